"""The Documents tab: files read safely, the whole document or retrieval chosen, chunks scored and cited."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from gradio_client import handle_file

from qwen_playground.backends import retrieval as engine
from qwen_playground.core.config import load_config
from qwen_playground.documents import Document, Page, chunk, read_document, token_count
from qwen_playground.tasks import TaskError
from qwen_playground.tasks import documents as task
from qwen_playground.tasks.retrieval import BM25, forget_session, forget_stale_sessions, index_folder, retrieval_settings, retrieve
from qwen_playground.vision import UploadRejected

MARKDOWN = "# Animals\n\nThe zebra lives on the African savanna.\n\nThe emperor penguin breeds in Antarctica in winter.\n"


def make_pdf(path: Path, pages: list[str], *, image_only: bool = False, password: str | None = None) -> Path:
    from fpdf import FPDF
    from PIL import Image

    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    for text in pages:
        pdf.add_page()
        if image_only:  # a scan: a picture of a page, no text layer
            picture = path.with_suffix(".png")
            Image.new("RGB", (200, 280), "white").save(picture)
            pdf.image(str(picture), x=10, y=10, w=100)
        else:
            pdf.multi_cell(0, 6, text)
    if password:
        pdf.set_encryption(owner_password="owner", user_password=password)
    pdf.output(str(path))
    return path


def long_text(paragraphs: int = 120, secret_at: int = 77) -> str:
    """Paragraphs of filler, one of them holding a word no other has."""
    return "\n\n".join(f"Paragraph {i} talks about the weather in the valley, the river and the hills around the old town."
                       + (" The courier's password is xylophone." if i == secret_at else "") for i in range(paragraphs))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("documents")
    (folder / "animals.md").write_text(MARKDOWN, encoding="utf-8")
    (folder / "long.txt").write_text(long_text(), encoding="utf-8")
    make_pdf(folder / "report.pdf", ["Quarterly report. Sales rose in the north.", "Costs fell by a tenth in the south.",
                                     "The board meets in May."])
    return {path.name: path for path in folder.iterdir()}


def settings(config, **changes):
    return retrieval_settings(config, **{"retriever": BM25, "rerank": False, **changes})


def test_a_pdf_and_a_markdown_file_are_read_into_pages_and_counted(files):
    report = read_document(files["report.pdf"], 2**20)
    assert report.kind == "PDF" and report.page_count == 3 and [p.number for p in report.pages] == [1, 2, 3]
    assert "Costs fell by a tenth" in report.pages[1].text and len(report.digest) == 64
    notes = read_document(files["animals.md"], 2**20)
    assert notes.kind == "Markdown" and notes.page_count is None and notes.characters == len(MARKDOWN)
    assert token_count(notes.text) == 23  # Qwen3's tokens


def test_the_file_table_counts_tokens_in_the_chosen_models_tokenizer(demo_config, files):
    documents = task.read_files(demo_config, [str(files["animals.md"]), str(files["report.pdf"])])
    qwen35, qwen25 = (task.file_rows(demo_config, demo_config.registry.get(m), documents) for m in ("demo-qwen3.5", "demo-qwen2.5"))
    assert [(r.name, r.kind, r.pages) for r in qwen35] == [("animals.md", "Markdown", None), ("report.pdf", "PDF", 3)]
    assert qwen25[0].tokens == token_count(MARKDOWN)  # Qwen2.5 shares Qwen3's vocabulary; Qwen3.5 has its own
    assert all(r.tokens > 0 for r in qwen35)


def test_a_document_that_fits_goes_in_whole_and_a_long_one_is_retrieved(demo_config, files):
    small = task.prepare(demo_config, [str(files["animals.md"])], "Where do penguins breed?", "demo-qwen3.5", task.AUTO, settings(demo_config))
    assert small.ways == (task.WHOLE,) and "it fits" in small.why
    [planned] = task.plan(demo_config, small)
    assert planned.request.messages[1]["content"].startswith("[1] animals.md\n# Animals") and planned.retrieved is None
    long = task.prepare(demo_config, [str(files["long.txt"])], "What is the password?", "demo-qwen3.5", task.AUTO, settings(demo_config))
    assert long.ways == (task.RETRIEVAL,) and "so retrieval picks the pieces" in long.why and long.whole_tokens > long.limit
    with pytest.raises(TaskError, match="Choose Retrieval") as refused:
        task.prepare(demo_config, [str(files["long.txt"])], "What is the password?", "demo-qwen3.5", task.WHOLE, settings(demo_config))
    assert refused.value.field == "mode"


def test_bm25_finds_the_chunk_holding_a_unique_word(demo_config, files):
    documents = task.read_files(demo_config, [str(files["long.txt"])])
    retrieved = retrieve(demo_config, documents, "What is the courier's password?", settings(demo_config, keep=2))
    best = retrieved.kept[0]
    assert "xylophone" in best.chunk.text and best.rank == best.first_rank == 1 and best.similarity is None and best.rerank is None
    assert best.bm25 == max(s.bm25 for s in retrieved.scored) > 0
    assert len(retrieved.kept) == 2 and len(retrieved.candidates) == 10 and len(retrieved.scored) > 10
    lines = best.chunk.lines
    assert "xylophone" in "\n".join(documents[0].text.splitlines()[lines[0] - 1:lines[1]])  # "long.txt, lines a-b" is where it is


def test_chunks_have_the_size_and_overlap_asked_and_keep_their_page(files):
    report = read_document(files["report.pdf"], 2**20)
    assert [(c.page, c.where) for c in chunk([report], 64, 8)] == [(1, "report.pdf, page 1"), (2, "report.pdf, page 2"),
                                                                    (3, "report.pdf, page 3")]
    text = Document("long.txt", "x", "text", (Page(None, long_text(20)),))
    chunks = chunk([text], 64, 16)
    assert all(c.tokens <= 64 for c in chunks) and chunks[0].tokens >= 48
    assert chunks[0].text[-30:].split()[-1] in chunks[1].text  # the overlap repeats the end of one at the start of the next
    assert "".join(c.text for c in chunks).count("Paragraph 19") >= 1 and chunks[-1].text.endswith("old town.")
    with pytest.raises(ValueError, match="overlap"):
        chunk([text], 64, 64)


def test_the_rerankers_score_is_the_yes_no_logit_formula(demo_config):
    spec = demo_config.registry.get("demo-qwen3-reranker")
    loaded = engine.load(spec, demo_config.settings.cache_dir)
    passages = ["The emperor penguin breeds in Antarctica.", "Sales rose in the north, and costs fell by a tenth in the south."]
    scores = engine.rerank(loaded, "Where do penguins breed?", passages)
    tokenizer, traits = loaded.tokenizer, spec.family.retrieval
    for passage, score in zip(passages, scores):
        text = traits.prefix + f"<Instruct>: {traits.instruction}\n<Query>: Where do penguins breed?\n<Document>: {passage}" + traits.suffix
        with torch.no_grad():
            logits = loaded.model(torch.tensor([tokenizer(text).input_ids])).logits[0, -1].float()
        yes, no = logits[tokenizer.convert_tokens_to_ids("yes")], logits[tokenizer.convert_tokens_to_ids("no")]
        assert score == pytest.approx(float(torch.exp(yes) / (torch.exp(yes) + torch.exp(no))), abs=2e-3)  # bf16 weights, padded batch
    assert 0 < min(scores) and max(scores) < 1


def test_an_embedding_is_the_last_tokens_state_normalised(demo_config):
    loaded = engine.load(demo_config.registry.get("demo-qwen3-embedding"), demo_config.settings.cache_dir)
    texts = ["A short one.", "A rather longer text, so the batch has padding on the left of the short one."]
    vectors = engine.embed(loaded, texts)
    assert vectors.shape == (2, 64) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    ids = loaded.tokenizer(texts[0]).input_ids + [loaded.tokenizer.convert_tokens_to_ids("<|endoftext|>")]
    with torch.no_grad():
        alone = loaded.model(torch.tensor([ids])).last_hidden_state[0, -1].float()
    assert np.allclose(vectors[0], (alone / alone.norm()).numpy(), atol=2e-2)
    query = engine.query_text(loaded.traits, "penguins?")
    assert query == "Instruct: Given a question, retrieve passages of the documents that answer it\nQuery:penguins?"


def test_retrieval_with_embeddings_and_the_reranker_scores_every_candidate(demo_config, files):
    documents = task.read_files(demo_config, [str(files["long.txt"])])
    chosen = retrieval_settings(demo_config, retriever="Embeddings", rerank=True, candidates=6, keep=3)
    lines = []
    retrieved = retrieve(demo_config, documents, "What is the courier's password?", chosen, on_progress=lines.append)
    candidates = retrieved.candidates
    assert [s.rank for s in candidates] == [1, 2, 3, 4, 5, 6] and [s.kept for s in candidates] == [True] * 3 + [False] * 3
    assert [s.rerank for s in candidates] == sorted((s.rerank for s in candidates), reverse=True)
    assert sorted(s.first_rank for s in candidates) == [1, 2, 3, 4, 5, 6] and all(s.similarity is not None for s in retrieved.scored)
    assert retrieved.embedding_model == "demo-qwen3-embedding" and retrieved.reranker_model == "demo-qwen3-reranker"
    assert any("Embedding long.txt" in line for line in lines) and any("Reranking 6 candidates" in line for line in lines)
    assert any("random" in note and BM25 in note for note in retrieved.notes)  # the demo's retrieval says it is random
    again = retrieve(demo_config, documents, "Where is the river?", chosen)
    assert any("came from the cache" in note for note in again.notes)


def test_citations_point_at_the_sources_they_number(demo_config, files):
    job = task.prepare(demo_config, [str(files["long.txt"])], "What is the courier's password?", "demo-qwen3.5", task.RETRIEVAL,
                       settings(demo_config, keep=3, chunk_tokens=96, overlap_tokens=16))
    [planned] = task.plan(demo_config, job)
    cited = task.citations("It is xylophone [1], said twice [1, 3] and [2][9].", planned.sources)
    assert [s.number for s in cited] == [1, 3, 2]  # [9] names no source
    assert "xylophone" in cited[0].text and cited[0].where == planned.retrieved.kept[0].chunk.where
    prompt = planned.request.messages[1]["content"]
    assert prompt.index(f"[1] {cited[0].where}\n") < prompt.index(f"[2] {planned.sources[1].where}\n") < prompt.index("Question: What")


def test_chunks_that_do_not_fit_are_dropped_from_the_lowest_rank_and_said(demo_config, files):
    job = task.prepare(demo_config, [str(files["long.txt"])], "What is the courier's password?", "demo-qwen3.5", task.RETRIEVAL,
                       settings(demo_config, keep=3))  # three chunks of 256 tokens: more than the 512 the test app reads
    [planned] = task.plan(demo_config, job)
    assert len(planned.sources) == len(planned.retrieved.kept) == 1 and "xylophone" in planned.sources[0].text
    assert "Only the best 1 of the 3 chunks asked for fit: demo-qwen3.5 reads at most 512 tokens here" in planned.retrieved.notes[-1]


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda d: make_pdf(d / "locked.pdf", ["Secret plans."], password="hunter2"), "locked.pdf is protected by a password"),
    (lambda d: write(d / "broken.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage"), "broken.pdf could not be read as a PDF"),
    (lambda d: make_pdf(d / "scan.pdf", ["", ""], image_only=True), "scan.pdf has no text layer: its pages are pictures"),
    (lambda d: write(d / "photo.txt", bytes(range(256)) * 40), "photo.txt is not text"),
    (lambda d: write(d / "empty.md", b""), "empty.md is empty"),
    (lambda d: write(d / "blank.txt", b"\n \n\t\n"), "blank.txt holds no text"),
    (lambda d: write(d / "slides.pptx", b"PK\x03\x04"), "only .txt, .md, .markdown, .pdf files"),
])
def test_bad_files_are_refused_with_what_to_do(tmp_path, make, message):
    with pytest.raises(UploadRejected, match=message):
        read_document(make(tmp_path), 2**20)


def test_the_size_and_count_limits_are_settings_and_said(tmp_path, demo_config, files):
    config = dataclasses.replace(demo_config, settings=demo_config.settings.model_copy(update={"max_document_mb": 0.001, "max_documents": 2}))
    with pytest.raises(TaskError, match=r"long.txt is \d+\.\d KB; the limit is 1.0 KB per file") as refused:
        task.read_files(config, [str(files["long.txt"])])
    assert refused.value.field == "files"
    with pytest.raises(TaskError, match="3 files were given; the limit is 2 at once"):
        task.read_files(config, [str(files["animals.md"])] * 3)
    with pytest.raises(TaskError, match="Upload a document first"):
        task.read_files(config, [])


def test_a_pdf_with_some_blank_pages_says_which(tmp_path):
    from pypdf import PdfReader, PdfWriter

    source = PdfReader(make_pdf(tmp_path / "three.pdf", ["One.", "Two.", "Three."]))
    writer = PdfWriter()
    writer.add_page(source.pages[0])
    writer.add_blank_page(200, 200)
    writer.add_page(source.pages[2])
    writer.write(tmp_path / "gap.pdf")
    assert read_document(tmp_path / "gap.pdf", 2**20).notes == ("1 of 3 pages have no text (pictures or scans): pages 2",)


def test_public_sessions_never_share_vectors(tmp_path, files):
    config = load_config(demo=True, cache_dir=tmp_path, public=True)
    documents = task.read_files(config, [str(files["animals.md"])])
    chosen = retrieval_settings(config, retriever="Embeddings", rerank=False)
    retrieve(config, documents, "penguins?", chosen, user="alice@1.2.3.4")
    alice, bob = index_folder(config, "alice@1.2.3.4"), index_folder(config, "bob@5.6.7.8")
    assert alice != bob and list(alice.rglob("*.npy")) and not bob.exists()
    again = retrieve(config, documents, "penguins?", chosen, user="bob@5.6.7.8")
    assert not any("cache" in note for note in again.notes) and list(bob.rglob("*.npy"))  # Bob's own, computed for him
    forget_session(config, "alice@1.2.3.4")
    assert not alice.exists() and bob.exists()
    os.utime(bob, (time.time() - 2 * 86400,) * 2)  # an API client's session, unused for two days: no page closed to delete it
    forget_stale_sessions(config)
    assert not bob.exists()
    private = load_config(demo=True, cache_dir=tmp_path)
    assert index_folder(private, "alice") == index_folder(private, "bob")  # one person's machine: one cache


def test_a_retrieval_model_cannot_answer_and_wrong_settings_are_refused(demo_config, files):
    with pytest.raises(TaskError, match="retrieves; it does not write answers"):
        task.prepare(demo_config, [str(files["animals.md"])], "Q?", "demo-qwen3-embedding", task.AUTO, settings(demo_config))
    for call, field in ((lambda: retrieval_settings(demo_config, chunk_tokens=10), "chunk_tokens"),
                        (lambda: retrieval_settings(demo_config, overlap_tokens=256), "overlap_tokens"),
                        (lambda: retrieval_settings(demo_config, retriever="grep"), "retriever"),
                        (lambda: retrieval_settings(demo_config, embedding_model="demo-qwen3-reranker"), "embedding_model")):
        with pytest.raises(TaskError) as refused:
            call()
        assert refused.value.field == field


def test_documents_ask_and_inspect_endpoints(app, files):
    client, _ = app
    inputs = ([handle_file(str(files["animals.md"]))], "Where do penguins breed?", "demo-qwen3.5", task.AUTO, 256, 32, BM25, False, 10, 4,
              "demo-qwen3-embedding", "demo-qwen3-reranker", "full")
    status, answer, _sources, metrics, *_second, chunks = client.predict(*inputs, api_name="/documents_ask")
    assert "it fits" in status and answer[0]["content"][0]["text"] == "📄 1 document: Where do penguins breed?"
    assert len(answer) >= 2 and "tokens" in metrics and chunks["data"] == []
    pieces, notes, counts = client.predict(*inputs[:-1], "full", api_name="/inspect_documents")
    text = "".join(p["token"] for p in pieces)
    assert "[1] animals.md\n# Animals" in text and "Question: Where do penguins breed?" in text
    assert "**The way:**" in notes and "1 numbered sources" in notes and counts["total"] > 40


def test_retrieval_through_the_app_shows_the_scored_chunks_and_a_bad_file_is_refused(app, files, tmp_path):
    client, _ = app
    out = client.predict([handle_file(str(files["long.txt"]))], "What is the courier's password?", "demo-qwen3.5", task.RETRIEVAL, 128, 16,
                         BM25, False, 5, 2, "demo-qwen3-embedding", "demo-qwen3-reranker", "full", api_name="/documents_ask")
    chunks = out[-1]
    assert [row[0] for row in chunks["data"]] == [1, 2, 3, 4, 5] and "xylophone" in chunks["data"][0][-1]
    assert [row[7] for row in chunks["data"]] == ["✓", "✓", "", "", ""]
    photo = write(tmp_path / "photo.txt", bytes(range(256)) * 40)
    with pytest.raises(Exception, match="photo.txt is not text"):
        client.predict([handle_file(str(photo))], "Q?", "demo-qwen3.5", task.AUTO, 256, 32, BM25, False, 10, 4, "demo-qwen3-embedding",
                       "demo-qwen3-reranker", "full", api_name="/documents_ask")
    assert client.predict([handle_file(str(files["animals.md"]))], "Q?", "demo-qwen3.5", task.AUTO, 256, 32, BM25, False, 10, 4,
                          "demo-qwen3-embedding", "demo-qwen3-reranker", "full", api_name="/documents_ask")[0]


CHAT_SETTINGS = ("", False, 0.7, 0.8, 20, 0.0, 1.0, 0.0, 64, 0, "full", False, False)  # /chat: system prompt ... alternatives


def test_a_document_attached_in_chat_goes_to_the_model_whole_and_again_with_each_turn(demo_config, files):
    from qwen_playground.tasks import chat

    inputs = chat.ChatInputs("Where do penguins breed?", settings=chat.ChatSettings("demo-qwen2.5"), images=(str(files["animals.md"]),))
    job = chat.prepare(demo_config, inputs)
    content = job.request.messages[-1]["content"]
    assert content.startswith('<document name="animals.md">\n# Animals') and content.endswith("</document>\n\nWhere do penguins breed?")
    asked = job.conversation.path()[0]
    assert [p.kind for p in asked.parts] == ["file", "text"] and job.image_tokens == 0  # a document, not an image
    follow = chat.prepare(demo_config, chat.ChatInputs("And zebras?", job.conversation, chat.ChatSettings("demo-qwen2.5")))
    assert follow.request.messages[0]["content"].startswith('<document name="animals.md">')  # still in the conversation
    report = chat.prepare(demo_config, chat.ChatInputs("When?", settings=chat.ChatSettings("demo-qwen2.5"), images=(str(files["report.pdf"]),)))
    assert "[page 3]\nThe board meets in May." in report.request.messages[-1]["content"]


def test_a_long_or_bad_document_in_chat_is_refused_with_where_to_ask_instead(demo_config, files, tmp_path):
    from qwen_playground.tasks import chat

    for path, message in ((files["long.txt"], "one chat message carries at most 512 here. Ask about long documents in the Documents tab"),
                          (write(tmp_path / "photo.txt", bytes(range(256)) * 40), "photo.txt is not text")):
        with pytest.raises(TaskError, match=message) as refused:
            chat.prepare(demo_config, chat.ChatInputs("What?", settings=chat.ChatSettings("demo-qwen2.5"), images=(str(path),)))
        assert refused.value.field == "images"
    with pytest.raises(TaskError, match="Add a question about the documents"):
        chat.prepare(demo_config, chat.ChatInputs("", settings=chat.ChatSettings("demo-qwen2.5"), images=(str(files["animals.md"]),)))


def test_chat_takes_a_document_through_its_api(app, files):
    client, _ = app
    history, box = client.predict("Where do penguins breed?", [], "demo-qwen2.5", *CHAT_SETTINGS, [handle_file(str(files["animals.md"]))],
                                  api_name="/chat")
    assert [p["type"] for p in history[0]["content"]] == ["file", "text"] and history[0]["content"][0]["file"].endswith("animals.md")
    pieces, _, _ = client.predict("Where do penguins breed?", [], "demo-qwen2.5", "", False, [handle_file(str(files["animals.md"]))],
                                  api_name="/inspect")
    assert '<document name="animals.md">' in "".join(p["token"] for p in pieces)


def test_stop_while_retrieving_sends_nothing(demo_config, backend, files):
    import threading

    job = task.prepare(demo_config, [str(files["long.txt"])], "What is the password?", "demo-qwen3.5", task.RETRIEVAL,
                       retrieval_settings(demo_config, chunk_tokens=64, overlap_tokens=8))
    stop = threading.Event()
    stop.set()  # pressed before the first chunk is embedded
    with pytest.raises(TaskError, match="Stopped while retrieving: nothing was sent"):
        list(task.run(demo_config, backend, job, stop))
    views = list(task.run(demo_config, backend, job))  # asked again, it runs whole
    assert views[-1].done and views[-1].retrieved is not None and "Good day" in views[-1].panes[0][-1].turn.answer


def test_a_damaged_pdf_is_refused_however_it_is_damaged(tmp_path, files):
    """Cut short anywhere or with bytes overwritten, a PDF reads or is refused with a message; nothing else escapes."""
    import random

    data, rng = files["report.pdf"].read_bytes(), random.Random(0)
    damaged = [data[:n] for n in range(0, len(data), max(1, len(data) // 40))]
    for _ in range(40):
        flipped = bytearray(data)
        for _ in range(8):
            flipped[rng.randrange(len(flipped))] = rng.randrange(256)
        damaged.append(bytes(flipped))
    for i, sample in enumerate(damaged):
        path = write(tmp_path / f"damaged-{i}.pdf", sample)
        try:
            read_document(path, 2**20)
        except UploadRejected as e:
            assert f"damaged-{i}.pdf" in str(e)
