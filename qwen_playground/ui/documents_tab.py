"""The Documents tab: upload files, ask about them; the whole document or the pieces retrieval finds, each step shown.

Endpoints: `/documents_ask` (files, question, model, mode, chunk size, overlap,
retriever, rerank, candidates, kept, embedding model, reranker model,
precision) -> streamed (status, answer and cited sources for each way,
metrics, the scored chunks); `/inspect_documents` (the same inputs) -> the
inspector's view of the first request it would send.
"""

from __future__ import annotations

import html

import gradio as gr

from ..core.config import AppConfig
from ..service import Service
from ..tasks import TaskError
from ..tasks import documents as task
from ..tasks.retrieval import BM25, EMBEDDINGS, RETRIEVERS, Retrieved, forget_session, retrieval_settings
from . import uploads
from .chat_view import render
from .common import Stops, go_and_stop, model_picker, precision_picker, refusals, refuse, start_job, user_of, when_valid
from .inspector_tab import inspector_panel

FILE_TYPES = [".pdf", ".md", ".markdown", ".txt"]
FILE_COLUMNS = ["file", "kind", "pages", "characters", "tokens"]
CHUNK_COLUMNS = ["rank", "first-stage rank", "chunk", "where", "BM25", "similarity", "rerank", "in prompt", "text"]
CHUNK_WIDTHS = ["55px", "80px", "65px", "190px", "70px", "90px", "70px", "70px", "500px"]
PANES = ("a", "b")  # the first way's pane, and the second's when both ways run side by side
SETTINGS = ("chunk_tokens", "overlap_tokens", "retriever", "rerank", "candidates", "keep", "embedding_model", "reranker_model")


def layout(config: AppConfig, service: Service) -> dict:
    c: dict = {}
    with gr.Row():
        with gr.Column(scale=2):
            c["files"] = uploads.File(file_count="multiple", file_types=FILE_TYPES, type="filepath", label="Documents: PDF, Markdown or text",
                                      height=140, elem_classes="document-files")
            c["file_notes"] = gr.Markdown("*Upload files: each one's pages, characters and tokens show here, against the model's context.*",
                                          label="What the files cost")
            c["file_table"] = gr.Dataframe(headers=FILE_COLUMNS, interactive=False, label="Files", visible=False)
            c["question"] = gr.Textbox(label="Question", lines=2, max_lines=8, placeholder="Ask about the documents (Enter asks)")
            c["model"], _ = model_picker(config.registry, "documents")
            c["mode"] = gr.Radio(list(task.MODES), value=task.AUTO, label="How the documents reach the model",
                                 info="Auto: the whole document when it fits the context with room for the answer, else retrieval")
            retrieval_inputs(config, c)
            c["precision"] = precision_picker(service.capabilities())
            c["ask"], c["stop"] = go_and_stop("Ask")
        with gr.Column(scale=3):
            c["status"] = gr.Markdown(label="How it was answered")
            with gr.Row():
                for pane in PANES:
                    with gr.Column(visible=pane == "a") as c[f"column_{pane}"]:
                        c[f"answer_{pane}"] = gr.Chatbot(label="Answer" if pane == "a" else f"Answer: {task.RETRIEVAL.lower()}", height=360)
                        c[f"sources_{pane}"] = gr.Markdown(label="Cited sources", elem_classes="doc-sources")
                        c[f"metrics_{pane}"] = gr.Markdown(label="Metrics")
    with gr.Column(visible=False) as c["chunks_group"]:  # full width: nine columns
        c["chunks"] = gr.Dataframe(headers=CHUNK_COLUMNS, interactive=False, label="Retrieval: the candidates and their scores, best first",
                                   wrap=True, elem_classes="wide-table", column_widths=CHUNK_WIDTHS)
        gr.Markdown(f"First stage: {BM25} (words shared with the question, rarer words weigh more) or the cosine similarity of the "
                    "question's and the chunk's Qwen3-Embedding vectors; the best candidates then go to the reranker, whose score is "
                    "its probability that the chunk answers the question. ✓: in the prompt.")
    return c


def retrieval_inputs(config: AppConfig, c: dict) -> None:
    with gr.Accordion("Retrieval settings", open=False):
        c["retriever"] = gr.Radio(list(RETRIEVERS), value=EMBEDDINGS, label="Find chunks by",
                                  info=f"{EMBEDDINGS}: meaning (Qwen3-Embedding); {BM25}: shared words (a lexical baseline)")
        c["rerank"] = gr.Checkbox(True, label="Rerank the candidates (Qwen3-Reranker reads each beside the question)")
        with gr.Row():
            c["chunk_tokens"] = gr.Slider(32, 2048, 256, step=32, label="Chunk size (tokens)")
            c["overlap_tokens"] = gr.Slider(0, 512, 32, step=8, label="Overlap (tokens)")
        with gr.Row():
            c["candidates"] = gr.Slider(1, 50, 10, step=1, label="Candidates (for the reranker)")
            c["keep"] = gr.Slider(1, 20, 4, step=1, label="Chunks in the prompt")
        c["embedding_model"], _ = model_picker(config.registry, "embedding", "Embedding model")
        c["reranker_model"], _ = model_picker(config.registry, "reranking", "Reranker")


def chunk_rows(retrieved: Retrieved | None) -> list[list]:
    """The candidates, best first: their ranks, where they are, every score, whether they went in, how they begin."""
    if retrieved is None:
        return []
    rounded = lambda x: None if x is None else round(x, 3)  # noqa: E731
    return [[s.rank, s.first_rank, s.chunk.index + 1, s.chunk.where, rounded(s.bm25), rounded(s.similarity), rounded(s.rerank),
             "✓" if s.kept else "", " ".join(s.chunk.text.split())[:160]] for s in retrieved.candidates]


def linked(bubbles: list[dict], pane: str) -> list[dict]:
    """The answer's citations [n] as links that open source n below it."""
    def link(match) -> str:
        return "".join(f"[[{n.strip()}]](#doc-{pane}-source-{n.strip()})" for n in match[1].split(","))

    return [{**b, "content": task.CITATION.sub(link, b["content"])} if b["role"] == "assistant" and not b.get("metadata")
            and isinstance(b["content"], str) else b for b in bubbles]


def sources_markdown(cited: list[task.Source], sources: list[task.Source], pane: str) -> str:
    """The cited sources, each folded under its number, file and page (a citation's link opens it); in Markdown, whose
    sanitiser keeps <details> and ids (gr.HTML's code would load with the first page)."""
    if not sources:
        return ""
    items = "".join(f'<details id="doc-{pane}-source-{s.number}" class="doc-source"><summary>[{s.number}] {html.escape(s.where)}</summary>'
                    f'<pre style="white-space: pre-wrap">{html.escape(s.text)}</pre></details>' for s in cited)
    head = f"**{len(cited)} of the {len(sources)} sources in the prompt cited**" if cited else \
        f"{len(sources)} sources in the prompt; the answer has cited none yet."
    return f"{head}\n\n{items}"


def outputs_of(view: task.DocumentsView) -> list:
    """The handler's values: the status, each way's answer (citations linked), cited sources and metrics, the candidates."""
    out = [view.status]
    for i, pane in enumerate(PANES):
        if i < len(view.panes):
            out += [linked(render(view.panes[i], protect=False, footer=False, files_as_count=True), pane),
                    sources_markdown(view.cited[i], view.sources[i], pane), view.metrics[i]]
        else:
            out += [[], "", ""]
    return [*out, chunk_rows(view.retrieved)]


def build_documents_tab(config: AppConfig, service: Service) -> dict:
    c, stops = layout(config, service), Stops()

    def prepare(files, question, model, mode, chunk_tokens=256, overlap_tokens=32, retriever=EMBEDDINGS, rerank=True, candidates=10,
                keep=4, embedding_model="", reranker_model="", precision="full", user=""):
        settings = retrieval_settings(config, chunk_tokens, overlap_tokens, retriever, rerank, candidates, keep, embedding_model,
                                      reranker_model)
        return task.prepare(config, files, question, model, mode, settings, precision, user)

    def ask(files, question, model, mode, chunk_tokens=256, overlap_tokens=32, retriever=EMBEDDINGS, rerank=True, candidates=10, keep=4,
            embedding_model="", reranker_model="", precision="full", request: gr.Request = None):
        job = start_job(service, request, prepare, files, question, model, mode, chunk_tokens, overlap_tokens, retriever, rerank,
                        candidates, keep, embedding_model, reranker_model, precision)
        with stops.running(request) as stop, refusals():
            for view in task.run(config, service, job, stop):
                yield outputs_of(view)
        if view.error:
            raise refuse(view.error)

    inputs = [c[k] for k in ("files", "question", "model", "mode", *SETTINGS, "precision")]
    outputs = [c["status"], *(c[f"{kind}_{pane}"] for pane in PANES for kind in ("answer", "sources", "metrics")), c["chunks"]]
    for trigger, api_name in ((c["ask"].click, "documents_ask"), (c["question"].submit, None)):
        asked = when_valid(trigger, ask, prepare, inputs, outputs, api_name=api_name, concurrency_id="generate")
        asked.then(lambda rows: gr.Column(visible=len(rows) > 0), c["chunks"], c["chunks_group"], api_visibility="private", queue=False)
    c["mode"].change(lambda mode: [gr.Column(visible=mode == task.BOTH),
                                   gr.Chatbot(label=f"Answer: {task.WHOLE.lower()}" if mode == task.BOTH else "Answer")],
                     c["mode"], [c["column_b"], c["answer_a"]], api_visibility="private", queue=False)
    stops.bind(c["stop"], ask)
    bind_file_table(config, c)

    def inspect_job(files, question, model, mode, chunk_tokens=256, overlap_tokens=32, retriever=EMBEDDINGS, rerank=True, candidates=10,
                    keep=4, embedding_model="", reranker_model="", precision="full"):
        return task.inspected(config, prepare(files, question, model, mode, chunk_tokens, overlap_tokens, retriever, rerank, candidates,
                                              keep, embedding_model, reranker_model, precision))

    inspector_panel(config, inputs, inspect_job, "inspect_documents")
    return {k: c[k] for k in ("question", "model", "mode", *SETTINGS)}


def bind_file_table(config: AppConfig, c: dict) -> None:
    """As soon as there are files, each one's pages, characters and tokens for the chosen model show, or why one cannot
    be used, as a note beside them; the files, and on a public deployment their vectors, go with the session."""

    def describe_files(files, model):
        if not files:
            return "", gr.Dataframe(visible=False)
        try:
            spec = task.resolve(config.registry, model)
            documents = task.read_files(config, files)
            rows = task.file_rows(config, spec, documents)
        except TaskError as e:
            return f"⚠️ {e}", gr.Dataframe(visible=False)
        notes = [f"- {row.name}: {note}" for row in rows for note in row.notes]
        total = sum(row.tokens for row in rows)
        line = f"**{total:,} tokens** in {spec.id}'s tokenizer; it reads at most {task.answer_limit(config, spec):,} here before its answer."
        return "\n".join([line, *notes]), gr.Dataframe([[r.name, r.kind, r.pages, r.characters, r.tokens] for r in rows], visible=True)

    for source in (c["files"], c["model"]):
        source.change(describe_files, [c["files"], c["model"]], [c["file_notes"], c["file_table"]], api_visibility="private",
                      trigger_mode="always_last")
    uploads.deleted_with_session(c["files"])
    session = gr.State("", delete_callback=lambda user: forget_session(config, user) if user else None)

    def whose(request: gr.Request):
        return user_of(request)

    c["files"].upload(whose, None, session, api_visibility="private", queue=False)
