"""Retrieval for the Documents task: chunks scored by BM25 or Qwen3-Embedding, reordered by Qwen3-Reranker.

Every chunk gets its BM25 score (words shared with the question, weighted by
rarity: cheap, so always shown); with embeddings, its cosine similarity to
the question's vector too, which picks the candidates; the reranker then
reads each candidate beside the question and scores it again, and the best
few go into the prompt. Chunk vectors are kept on disk per file content hash,
embedding model and chunking, so asking again costs only the question's
vector. On a public deployment each visitor's vectors live in a folder of
their own session, deleted with it, and are never read for anyone else.
"""

from __future__ import annotations

import hashlib
import shutil
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from ..core.config import AppConfig
from ..core.registry import ModelSpec
from ..documents import Chunk, Document, chunk, words
from . import TaskError, one_of, resolve

EMBEDDINGS, BM25 = "Embeddings", "BM25"
STALE_SESSION_S = 24 * 3600
RETRIEVERS = (EMBEDDINGS, BM25)


@dataclass(frozen=True)
class RetrievalSettings:
    chunk_tokens: int = 256
    overlap_tokens: int = 32
    retriever: str = EMBEDDINGS
    rerank: bool = True
    candidates: int = 10  # the first stage's best, which the reranker reads
    keep: int = 4  # chunks that go into the prompt
    embedding_model: str = ""  # "": the embedding route's default
    reranker_model: str = ""  # "": the reranking route's default


def retrieval_settings(config: AppConfig, chunk_tokens: object = 256, overlap_tokens: object = 32, retriever: object = EMBEDDINGS,
                       rerank: object = True, candidates: object = 10, keep: object = 4, embedding_model: object = "",
                       reranker_model: object = "") -> RetrievalSettings:
    """The tab's retrieval inputs, checked (an API caller may send anything), each refusal naming its input."""
    size = _whole(chunk_tokens, 32, 2048, "Chunk size", "chunk_tokens")
    overlap = _whole(overlap_tokens, 0, size - 1, "Overlap", "overlap_tokens")
    settings = RetrievalSettings(size, overlap, one_of(retriever, RETRIEVERS, "retriever", "retriever"), bool(rerank),
                                 _whole(candidates, 1, 50, "Candidates", "candidates"), _whole(keep, 1, 20, "Chunks kept", "keep"),
                                 str(embedding_model or ""), str(reranker_model or ""))
    for model_id, kind, field in ((settings.embedding_model, "embedding", "embedding_model"),
                                  (settings.reranker_model, "reranker", "reranker_model")):
        if model_id and kind_of(resolve(config.registry, model_id)) != kind:
            raise TaskError(f"{model_id} is not {'an embedding model' if kind == 'embedding' else 'a reranker'}; pick one from the list.", field)
    return settings


def kind_of(spec: ModelSpec) -> str | None:
    """"embedding", "reranker", or None for a model that writes text."""
    return spec.family.retrieval.kind if spec.family.retrieval else None


def _whole(value: object, low: int, high: int, what: str, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or not low <= value <= high:
        raise TaskError(f"{what} must be a whole number from {low} to {high}; it was {value!r}.", field)
    return int(value)


@dataclass(frozen=True)
class Scored:
    """A chunk and what retrieval made of it."""

    chunk: Chunk
    bm25: float
    similarity: float | None = None  # cosine with the question (embeddings)
    rerank: float | None = None  # the reranker's P(yes), for candidates
    first_rank: int = 0  # 1-based, by the first stage (BM25 or embeddings)
    rank: int | None = None  # 1-based final rank among the candidates
    kept: bool = False  # in the prompt


@dataclass
class Retrieved:
    scored: list[Scored]  # every chunk, in document order
    settings: RetrievalSettings
    embedding_model: str | None
    reranker_model: str | None
    notes: list[str]

    @property
    def kept(self) -> list[Scored]:
        return sorted((s for s in self.scored if s.kept), key=lambda s: s.rank)

    @property
    def candidates(self) -> list[Scored]:
        return sorted((s for s in self.scored if s.rank is not None), key=lambda s: s.rank)


def model_for(config: AppConfig, chosen: str, route: str) -> ModelSpec:
    if chosen:
        return resolve(config.registry, chosen)
    choices = config.registry.choices(route)
    if not choices:
        raise TaskError(f"No {route} model is configured (the '{route}' route): choose {BM25} without the reranker.", "retriever")
    return choices[0]


def chunks_of(config: AppConfig, documents: list[Document], settings: RetrievalSettings) -> list[list[Chunk]]:
    """Each document's chunks (numbered across all of them), refused when there are more than the app indexes."""
    per_document = [chunk([doc], settings.chunk_tokens, settings.overlap_tokens) for doc in documents]
    total, limit = sum(map(len, per_document)), config.settings.max_document_chunks
    if total > limit:
        raise TaskError(f"The files make {total:,} chunks of {settings.chunk_tokens} tokens; the limit is {limit:,}. Make the chunks "
                        "larger, or ask about fewer or shorter files.", "chunk_tokens")
    numbered, start = [], 0
    for chunks in per_document:
        numbered.append([replace(c, index=start + i) for i, c in enumerate(chunks)])
        start += len(chunks)
    return numbered


def bm25_scores(chunks: list[Chunk], question: str) -> list[float]:
    from rank_bm25 import BM25Okapi

    return [float(s) for s in BM25Okapi([words(c.text) or [""] for c in chunks]).get_scores(words(question))]


def index_folder(config: AppConfig, user: str) -> Path:
    """Where chunk vectors are kept: the cache folder, or on a public deployment a folder of this session's own."""
    root = Path(config.settings.cache_dir).expanduser() / "document_index"
    if config.settings.is_public:
        return root / "sessions" / hashlib.sha256(user.encode()).hexdigest()[:24]
    return root / "shared"


def forget_session(config: AppConfig, user: str) -> None:
    """Delete a session's vectors (public deployments: when its page has closed)."""
    if config.settings.is_public:
        shutil.rmtree(index_folder(config, user), ignore_errors=True)


def forget_stale_sessions(config: AppConfig, older_than_s: float = STALE_SESSION_S) -> None:
    """Delete the vectors of sessions unused for a day: an API client's session has no page whose closing deletes them."""
    sessions = index_folder(config, "").parent
    if config.settings.is_public and sessions.is_dir():
        for folder in sessions.iterdir():
            if time.time() - folder.stat().st_mtime > older_than_s:
                shutil.rmtree(folder, ignore_errors=True)


def chunk_vectors(config: AppConfig, spec: ModelSpec, document: Document, chunks: list[Chunk], settings: RetrievalSettings, user: str,
                  on_progress: Callable[[str], None]) -> tuple[np.ndarray, bool]:
    """(one row per chunk, whether it came from the cache) for one document's chunks."""
    from ..backends import retrieval as engine

    folder = index_folder(config, user)
    path = folder / spec.id / f"{document.digest}-{settings.chunk_tokens}-{settings.overlap_tokens}.npy"
    if path.is_file():
        folder.touch()  # in use now (a session's folder unused for a day goes)
        vectors = np.load(path)
        if len(vectors) == len(chunks):
            return vectors, True
    forget_stale_sessions(config)  # only when writing: a question answered from the cache lists no folders
    path.parent.mkdir(parents=True, exist_ok=True)
    folder.touch()
    loaded = engine.load(spec, Path(config.settings.cache_dir), config.settings.device, config.settings.dtype)
    vectors = engine.embed(loaded, [c.text for c in chunks],
                           lambda done, total: on_progress(f"Embedding {document.name} with {spec.id}: {done} of {total} chunks…"))
    staging = path.with_name(f"{path.stem}.{uuid.uuid4().hex}.partial.npy")  # two askers at once each write their own
    np.save(staging, vectors)
    staging.replace(path)  # whole or not at all: a reader never sees half a file
    return vectors, False


def similarities(config: AppConfig, documents: list[Document], chunks: list[list[Chunk]], question: str, settings: RetrievalSettings,
                 user: str, on_progress: Callable[[str], None]) -> tuple[list[float], ModelSpec, list[str]]:
    """Each chunk's cosine similarity to the question, by the embedding model; notes on what the cache saved."""
    from ..backends import retrieval as engine

    spec = model_for(config, settings.embedding_model, "embedding")
    rows, cached = [], []
    for document, doc_chunks in zip(documents, chunks):
        if doc_chunks:
            vectors, hit = chunk_vectors(config, spec, document, doc_chunks, settings, user, on_progress)
            rows.append(vectors)
            cached += [document.name] if hit else []
    loaded = engine.load(spec, Path(config.settings.cache_dir), config.settings.device, config.settings.dtype)
    query = engine.embed(loaded, [engine.query_text(loaded.traits, question)])[0]
    notes = [f"Vectors of {', '.join(cached)} came from the cache (asked about before, same model and chunking)."] if cached else []
    return [float(s) for s in np.concatenate(rows) @ query], spec, notes


def retrieve(config: AppConfig, documents: list[Document], question: str, settings: RetrievalSettings, user: str = "",
             on_progress: Callable[[str], None] = lambda _: None) -> Retrieved:
    """Score every chunk, take the first stage's best `candidates`, rerank them, keep the best `keep`."""
    per_document = chunks_of(config, documents, settings)
    chunks = [c for group in per_document for c in group]
    if not chunks:
        raise TaskError("The files hold no text to retrieve from.", "files")
    on_progress(f"Scoring {len(chunks)} chunks with BM25…")
    bm25 = bm25_scores(chunks, question)
    similarity, embedder, notes = None, None, []
    if settings.retriever == EMBEDDINGS:
        similarity, embedder, notes = similarities(config, documents, per_document, question, settings, user, on_progress)
    first = similarity if similarity is not None else bm25
    order = sorted(range(len(chunks)), key=lambda i: -first[i])
    first_rank = {i: r + 1 for r, i in enumerate(order)}
    candidates = order[: settings.candidates]
    reranks, reranker = {}, None
    if settings.rerank:
        reranker = model_for(config, settings.reranker_model, "reranking")
        on_progress(f"Reranking {len(candidates)} candidates with {reranker.id}…")
        reranks = dict(zip(candidates, _rerank(config, reranker, question, [chunks[i].text for i in candidates])))
        candidates = sorted(candidates, key=lambda i: -reranks[i])
    final = {i: r + 1 for r, i in enumerate(candidates)}
    scored = [Scored(c, bm25[i], None if similarity is None else similarity[i], reranks.get(i), first_rank[i], final.get(i),
                     final.get(i, settings.keep + 1) <= settings.keep) for i, c in enumerate(chunks)]
    notes += [f"{spec.id} is a demo model with random weights: its {what} are random, so what it picks is too. Choose {BM25} (and no "
              "reranker) to see retrieval that works offline." for spec, what in ((embedder, "vectors"), (reranker, "scores")) if spec and spec.demo]
    return Retrieved(scored, settings, embedder.id if embedder else None, reranker.id if reranker else None, notes)


def _rerank(config: AppConfig, spec: ModelSpec, question: str, passages: list[str]) -> list[float]:
    from ..backends import retrieval as engine

    if kind_of(spec) != "reranker":
        raise TaskError(f"{spec.id} is not a reranker; pick one from the list.", "reranker_model")
    return engine.rerank(engine.load(spec, Path(config.settings.cache_dir), config.settings.device, config.settings.dtype), question, passages)
