"""The Documents task: ask about uploaded files, with the whole document in the prompt or the pieces retrieval finds.

`prepare` reads the files and decides the way (cheap: it also validates the
tab's inputs); `plan` builds each way's request, retrieving first where it
retrieves (the tab's run and its inspector both call it, so what is inspected
is what is sent). Whole document: every page is a numbered source, when the
prompt fits the model's context with room for the answer. Retrieval
(`retrieval.py`): chunks scored by BM25 or by Qwen3-Embedding, reordered by
Qwen3-Reranker, the best few numbered as sources. Either way the model is
asked to cite sources as [1], [2], and each citation resolves to its piece.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from ..backends import Backend
from ..core.config import AppConfig
from ..core.generation import Request
from ..core.prompts import load_template
from ..core.registry import ModelSpec
from ..documents import Document, read_cached
from ..vision import UploadRejected
from . import TaskError, one_of, require_text, resolve
from .conversation import Message, Part
from .retrieval import RetrievalSettings, Retrieved, retrieve
from .streaming import stream_turns

AUTO, WHOLE, RETRIEVAL, BOTH = "Auto", "Whole document", "Retrieval", "Both side by side"
MODES = (AUTO, WHOLE, RETRIEVAL, BOTH)
ANSWER_ROOM = 1024  # tokens kept for the answer when deciding whether a document fits (and the answer's length)


@dataclass(frozen=True)
class Source:
    """One numbered piece of the prompt: a page (whole document) or a chunk (retrieval)."""

    number: int
    where: str
    text: str


@dataclass
class DocumentsJob:
    spec: ModelSpec
    question: str
    documents: list[Document]
    ways: tuple[str, ...]  # WHOLE and/or RETRIEVAL
    why: str  # why these ways (the page says it)
    whole_tokens: int  # the whole-document prompt's tokens in the model's tokenizer
    limit: int  # the longest prompt the model may read here, the answer's room kept
    settings: RetrievalSettings
    precision: str = "full"
    user: str = ""

    @property
    def shown(self) -> list[Message]:
        files = [Part("file", path=doc.name) for doc in self.documents]
        return [Message("user", [*files, Part("text", self.question)])]


def read_files(config: AppConfig, files: object) -> list[Document]:
    """The uploaded files as documents; any that cannot be used refused, naming it and why."""
    paths = [str(f) for f in (files if isinstance(files, (list, tuple)) else [files] if files else []) if f]
    if not paths:
        raise TaskError("Upload a document first (PDF, Markdown or plain text).", "files")
    limit = config.settings.max_documents
    if len(paths) > limit:
        raise TaskError(f"{len(paths)} files were given; the limit is {limit} at once. Remove some, or ask about them in turns.", "files")
    documents = []
    for path in paths:
        try:
            documents.append(read_cached(path, int(config.settings.max_document_mb * 2**20)))
        except UploadRejected as e:
            raise TaskError(str(e), "files") from None
        except OSError:
            raise TaskError(f"{Path(path).name} could not be opened; upload it again.", "files") from None
    return documents


def answer_limit(config: AppConfig, spec: ModelSpec) -> int:
    """The longest prompt `spec` reads here: its context less the answer's room, and the app's input limit."""
    return min(config.settings.max_input_tokens, spec.context_length - ANSWER_ROOM)


def prompt_messages(question: str, sources: list[Source]) -> list[dict]:
    """The fixed template (prompts/documents.yaml): the system turn, then the numbered sources and the question."""
    template = load_template("documents")
    shown = [{"number": s.number, "where": s.where, "text": s.text} for s in sources]
    return [{"role": "system", "content": template.render_system()},
            {"role": "user", "content": template.render_user(sources=shown, question=question)}]


def whole_sources(documents: list[Document]) -> list[Source]:
    """Every page of every document, in order, each a source (a text file is one)."""
    pages = [(doc, page) for doc in documents for page in doc.pages if page.text.strip()]
    return [Source(i + 1, f"{doc.name}, page {page.number}" if page.number is not None else doc.name, page.text.strip())
            for i, (doc, page) in enumerate(pages)]


def prompt_tokens(config: AppConfig, spec: ModelSpec, messages: list[dict], thinking: bool = False) -> int:
    """The templated prompt's exact length in `spec`'s own tokens (what the inspector counts)."""
    from ..backends.encoding import encode_chat
    from .inspect import tokenizer_for

    tokenizer, _ = tokenizer_for(spec, config.settings.cache_dir)
    return len(encode_chat(tokenizer, messages, **spec.family.template_kwargs(thinking))[1])


def prepare(config: AppConfig, files: object, question: object, model_id: str, mode: object, settings: RetrievalSettings,
            precision: str = "full", user: str = "") -> DocumentsJob:
    """Read the files and decide the way: Auto takes the whole document when it fits, else retrieval."""
    spec = resolve(config.registry, model_id)
    if spec.family.retrieval is not None:
        raise TaskError(f"{spec.id} retrieves; it does not write answers. Pick a chat model to answer with.", "model")
    mode = one_of(mode, MODES, "mode", "mode")
    text = require_text(question, "a question about the documents", "question")
    documents = read_files(config, files)
    limit = answer_limit(config, spec)
    whole = prompt_tokens(config, spec, prompt_messages(text, whole_sources(documents)))
    fits = whole <= limit
    size = f"The whole document{'s are' if len(documents) > 1 else ' is'} {whole:,} tokens as a prompt for {spec.id}"
    room = f"it reads at most {limit:,} here ({spec.context_length:,} context, {ANSWER_ROOM:,} kept for the answer)"
    if mode in (WHOLE, BOTH) and not fits:
        raise TaskError(f"{size}; {room}. Choose {RETRIEVAL} (or {AUTO}), or a model with a longer context.", "mode")
    ways = {AUTO: (WHOLE,) if fits else (RETRIEVAL,), WHOLE: (WHOLE,), RETRIEVAL: (RETRIEVAL,), BOTH: (WHOLE, RETRIEVAL)}[mode]
    if mode == AUTO:
        why = f"{size}: it fits ({room}), so all of it goes in." if fits else f"{size}; {room}, so retrieval picks the pieces that go in."
    else:
        why = f"{mode}, as chosen. {size}; {room}."
    return DocumentsJob(spec, text, documents, ways, why, whole, limit, settings, precision, user)


@dataclass
class Planned:
    """One way's request, with the sources it numbers and, for retrieval, every chunk's scores."""

    way: str
    request: Request
    sources: list[Source]
    retrieved: Retrieved | None = None


def plan(config: AppConfig, job: DocumentsJob, on_progress: Callable[[str], None] = lambda _: None) -> list[Planned]:
    """Each way's request: the whole document's, and retrieval's once it has scored the chunks."""
    planned = []
    for way in job.ways:
        retrieved = retrieve(config, job.documents, job.question, job.settings, job.user, on_progress) if way == RETRIEVAL else None
        sources = whole_sources(job.documents) if retrieved is None else \
            [Source(i + 1, s.chunk.where, s.chunk.text) for i, s in enumerate(retrieved.kept)]
        messages = prompt_messages(job.question, sources)
        while retrieved is not None and len(sources) > 1 and prompt_tokens(config, job.spec, messages) > job.limit:
            sources, messages = sources[:-1], prompt_messages(job.question, sources[:-1])  # the lowest-ranked goes first
        if retrieved is not None and (tokens := prompt_tokens(config, job.spec, messages)) > job.limit:
            raise TaskError(f"Even the best chunk makes a prompt of {tokens:,} tokens; {job.spec.id} reads at most {job.limit:,} here. Make "
                            "the chunks smaller, or pick a model with a longer context.", "chunk_tokens")
        if retrieved is not None and len(sources) < len(retrieved.kept):
            retrieved.notes.append(f"Only the best {len(sources)} of the {len(retrieved.kept)} chunks asked for fit: {job.spec.id} reads at "
                                   f"most {job.limit:,} tokens here. Make the chunks smaller to fit more.")
            retrieved.scored = [dataclasses.replace(s, kept=s.kept and s.rank <= len(sources)) for s in retrieved.scored]
        sampling = job.spec.preset(False).model_copy(update={"max_new_tokens": ANSWER_ROOM})
        planned.append(Planned(way, Request(job.spec.id, messages, sampling, precision=job.precision, user=job.user), sources, retrieved))
    return planned


@dataclass
class Inspected:
    """What the inspector shows of a question: the requests it would send, and how they were made."""

    requests: list[Request]
    inspector_notes: list[str]


def inspected(config: AppConfig, job: DocumentsJob) -> Inspected:
    """The requests the tab would send (retrieval run, as the answer runs it), and notes on the way and the sources."""
    planned = plan(config, job)
    notes = [f"**The way:** {job.why}"]
    for p in planned:
        unit = "chunks chosen by retrieval, best first" if p.retrieved else "pages (a text file is one), in order"
        notes.append(f"**{p.way}:** {len(p.sources)} numbered sources ({unit}), in the template prompts/documents.yaml.")
        notes += p.retrieved.notes if p.retrieved else []
    return Inspected([p.request for p in planned], notes)


CITATION = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")


def citations(answer: str, sources: list[Source]) -> list[Source]:
    """The sources an answer cites ([2], [1, 3], [2][3]), in the order first cited; numbers no source has are left out."""
    by_number = {s.number: s for s in sources}
    cited = dict.fromkeys(int(n) for match in CITATION.finditer(answer) for n in match[1].split(","))
    return [by_number[n] for n in cited if n in by_number]


@dataclass
class DocumentsView:
    panes: list[list[Message]]  # one conversation per way
    sources: list[list[Source]]  # each way's numbered sources
    cited: list[list[Source]]  # what each answer cites so far
    retrieved: Retrieved | None
    metrics: list[str]
    status: str  # the way chosen and why, and retrieval's progress
    error: str | None = None
    done: bool = False
    ways: tuple[str, ...] = ()


def run(config: AppConfig, backend: Backend, job: DocumentsJob, stop: threading.Event | None = None) -> Iterator[DocumentsView]:
    """Retrieval's progress while it indexes, then the answers as they stream, their citations resolved."""
    progress: list[str] = []
    view = DocumentsView([list(job.shown) for _ in job.ways], [[] for _ in job.ways], [[] for _ in job.ways], None,
                         ["" for _ in job.ways], job.why, ways=job.ways)
    planned = yield from _planned_with_progress(config, job, view, progress, stop)
    view.sources = [p.sources for p in planned]
    view.retrieved = next((p.retrieved for p in planned if p.retrieved is not None), None)
    view.status = "\n\n".join([job.why, *(view.retrieved.notes if view.retrieved else [])])
    for state in stream_turns(backend, [p.request for p in planned], stop):
        view.panes = [[*job.shown, Message.assistant(turn)] for turn in state.turns]
        view.cited = [citations(turn.answer, p.sources) for turn, p in zip(state.turns, planned)]
        view.metrics = [turn.metrics_line for turn in state.turns]
        view.error = next((turn.error for turn in state.turns if turn.error), None)
        view.done = state.done
        yield view


def _planned_with_progress(config: AppConfig, job: DocumentsJob, view: DocumentsView, progress: list[str], stop: threading.Event | None):
    """`plan` on a thread, its progress lines yielded as views while it works (indexing a long file takes a while);
    Stop ends it at its next step, and nothing is sent."""
    result: dict = {}
    wake = threading.Event()

    def report(line: str) -> None:
        if stop is not None and stop.is_set():
            raise TaskError("Stopped while retrieving: nothing was sent to the model.")
        progress.append(line)
        wake.set()

    def work() -> None:
        try:
            result["planned"] = plan(config, job, report)
        except Exception as e:  # the handler re-raises it where it can say it
            result["error"] = e
        wake.set()

    thread = threading.Thread(target=work, name="documents-plan", daemon=True)
    thread.start()
    while thread.is_alive():
        wake.wait(0.5)
        wake.clear()
        if progress:
            view.status = f"{job.why}\n\n{progress[-1]}"
            yield view
    if "error" in result:
        raise result["error"]
    return result["planned"]


@dataclass
class FileRow:
    name: str
    kind: str
    pages: int | None
    characters: int
    tokens: int
    notes: tuple[str, ...] = ()


def file_rows(config: AppConfig, spec: ModelSpec, documents: list[Document]) -> list[FileRow]:
    """Each file's pages, characters and tokens in `spec`'s own tokenizer (what it costs that model's context)."""
    from .inspect import tokenizer_for

    tokenizer, _ = tokenizer_for(spec, config.settings.cache_dir)
    return [FileRow(doc.name, doc.kind, doc.page_count, doc.characters, len(tokenizer(doc.text, add_special_tokens=False).input_ids),
                    doc.notes) for doc in documents]
