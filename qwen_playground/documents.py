"""Documents people ask about: uploads read safely into pages of text, and pages cut into chunks.

A file is read by content, never trusted by its name: a PDF with pypdf (pure
Python, text layers only: the lightest reader that serves; richer converters
such as markitdown or docling pull in far more and OCR engines), a text or
Markdown file decoded by what its bytes are (charset-normalizer), a binary
file renamed .txt refused. Every refusal says what to do. Chunks are counted
in Qwen3's tokens (the tokenizer of Qwen3-Embedding and Qwen3-Reranker, which
read them), stay within one page, so a citation names its page, and overlap
by a set number of tokens, so a sentence cut at a boundary is whole in one.
"""

from __future__ import annotations

import functools
import hashlib
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

from .core.tokenizer_files import qwen3_tokenizer_dir
from .vision import UploadRejected

TEXT_SUFFIXES = (".txt", ".md", ".markdown")
SUFFIXES = (*TEXT_SUFFIXES, ".pdf")
KINDS = {".pdf": "PDF", ".md": "Markdown", ".markdown": "Markdown", ".txt": "text"}


@dataclass(frozen=True)
class Page:
    number: int | None  # a PDF's page (1-based); None: a text file, which has no pages
    text: str


@dataclass(frozen=True)
class Document:
    name: str
    digest: str  # SHA-256 of the file's bytes: its vectors are cached under it
    kind: str  # "PDF", "Markdown", "text"
    pages: tuple[Page, ...]
    notes: tuple[str, ...] = ()  # what was noticed while reading (pages without text)

    @property
    def text(self) -> str:
        return "\n\n".join(page.text for page in self.pages)

    @property
    def characters(self) -> int:
        return sum(len(page.text) for page in self.pages)

    @property
    def page_count(self) -> int | None:
        return len(self.pages) if self.kind == "PDF" else None


@dataclass(frozen=True)
class Chunk:
    """A piece of a document that retrieval scores and a prompt may quote."""

    document: str  # the file's name
    page: int | None
    index: int  # its place among all the chunks of its documents (0-based)
    text: str
    tokens: int
    lines: tuple[int, int] | None = None  # a text file's first and last line

    @property
    def where(self) -> str:
        """'report.pdf, page 3' or 'notes.md, lines 10-24'."""
        if self.page is not None:
            return f"{self.document}, page {self.page}"
        if self.lines:
            first, last = self.lines
            return f"{self.document}, line{'s' if last > first else ''} {first}{f'-{last}' if last > first else ''}"
        return self.document


def is_document(path: str | Path) -> bool:
    """Whether a file is one this module reads (by its name: its content is checked when it is read)."""
    return Path(path).suffix.lower() in SUFFIXES


def read_cached(path: str | Path, max_bytes: int) -> Document:
    """`read_document`, kept while the file is unchanged: a conversation sends its documents again with every turn."""
    stat = Path(path).stat()
    return _read_once(str(path), stat.st_size, stat.st_mtime_ns, max_bytes)


@functools.lru_cache(maxsize=32)
def _read_once(path: str, size: int, mtime_ns: int, max_bytes: int) -> Document:  # size and time: a changed file is read again
    return read_document(path, max_bytes)


def as_text(document: Document) -> str:
    """A document as a chat message carries it to the model: named, each page headed by its number."""
    pages = "\n\n".join(f"[page {page.number}]\n{page.text.strip()}" if page.number is not None else page.text.strip()
                         for page in document.pages if page.text.strip())
    return f'<document name="{document.name}">\n{pages}\n</document>'


def read_document(path: str | Path, max_bytes: int, name: str | None = None) -> Document:
    """An uploaded file as pages of text, or UploadRejected saying why it cannot be used."""
    path = Path(path)
    name = name or path.name
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise UploadRejected(f"{name}: only {', '.join(SUFFIXES)} files can be read here. Save it as PDF or plain text and upload that.")
    size = path.stat().st_size
    if size == 0:
        raise UploadRejected(f"{name} is empty. Choose the file that holds the text.")
    if size > max_bytes:
        raise UploadRejected(f"{name} is {_size(size)}; the limit is {_size(max_bytes)} per file. Split it, or upload the part you are "
                             "asking about.")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if suffix == ".pdf":
        pages, notes = _pdf_pages(path, name)
    else:
        pages, notes = (Page(None, _decoded(data, name)),), ()
    if not any(page.text.strip() for page in pages):
        raise UploadRejected(f"{name} holds no text (only blank space). Choose the file that holds the text.")
    return Document(name, digest, KINDS[suffix], pages, notes)


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 2**10:.1f} KB"


def _decoded(data: bytes, name: str) -> str:
    """A text file's characters: UTF-8 (most files), else whatever encoding its bytes show; a binary file (an image or
    program renamed .txt) refused."""
    from charset_normalizer import from_bytes

    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        best = None if b"\x00" in data[:8192] and data[:2] not in (b"\xff\xfe", b"\xfe\xff") else from_bytes(data).best()
        if best is None:
            raise UploadRejected(f"{name} is not text: its bytes look like a binary file (an image, archive or program) with a text "
                                 "name. Upload the document itself, as PDF or plain text.") from None
        text = str(best).lstrip("\ufeff")
    if "\x00" in text:
        raise UploadRejected(f"{name} is not text: it holds NUL bytes, as binary files do. Upload the document itself, as PDF or plain text.")
    return text.replace("\r\n", "\n")


def _pdf_pages(path: Path, name: str) -> tuple[tuple[Page, ...], tuple[str, ...]]:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PyPdfError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):  # many PDFs are "encrypted" with an empty password, to stop edits only
            raise FileNotDecryptedError
        texts = [page.extract_text() or "" for page in reader.pages]
    except FileNotDecryptedError:
        raise UploadRejected(f"{name} is protected by a password. Open it, save or print it as a PDF without one, and upload that.") from None
    except (PyPdfError, ValueError, KeyError, TypeError, IndexError, AttributeError, OSError, RecursionError, zlib.error):
        raise UploadRejected(f"{name} could not be read as a PDF: the file is damaged or is not a PDF. Open it in a PDF viewer, save it "
                             "again, and upload the new copy.") from None
    except NotImplementedError as e:  # e.g. an encryption pypdf cannot undo without the cryptography package
        raise UploadRejected(f"{name} could not be opened ({e}). Save it as a PDF without protection and upload that.") from None
    if not texts:
        raise UploadRejected(f"{name} has no pages.")
    if not any(text.strip() for text in texts):
        raise UploadRejected(f"{name} has no text layer: its pages are pictures (a scan?). This app does not read text from images (no OCR): "
                             "export the document with its text, or run it through OCR first.")
    blank = [i + 1 for i, text in enumerate(texts) if not text.strip()]
    notes = (f"{len(blank)} of {len(texts)} pages have no text (pictures or scans): {_ranges(blank)}",) if blank else ()
    return tuple(Page(i + 1, text) for i, text in enumerate(texts)), notes


def _ranges(numbers: list[int]) -> str:
    """[1, 2, 3, 7] -> 'pages 1-3, 7'."""
    spans: list[list[int]] = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return "pages " + ", ".join(f"{a}-{b}" if b > a else f"{a}" for a, b in spans)


@functools.cache
def _tokenizer():
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(qwen3_tokenizer_dir() / "tokenizer.json"))


def token_count(text: str) -> int:
    """`text` in Qwen3's tokens (what the embedding model and reranker read)."""
    return len(_tokenizer().encode(text, add_special_tokens=False).ids)


def chunk(documents: list[Document], size: int, overlap: int) -> list[Chunk]:
    """Every document cut into chunks of at most `size` Qwen3 tokens, each starting `size - overlap` tokens after the one
    before, never across a page; a chunk's ends are moved back to a word's start where one is near."""
    if not 0 <= overlap < size:
        raise ValueError(f"The overlap ({overlap}) must be smaller than the chunk size ({size}).")
    chunks: list[Chunk] = []
    for document in documents:
        for page in document.pages:
            for start, end, tokens in _windows(page.text, size, overlap):
                text = page.text[start:end].strip()
                if text:
                    lines = None if page.number is not None else (page.text.count("\n", 0, start) + 1,
                                                                  page.text.count("\n", 0, max(start, end - 1)) + 1)
                    chunks.append(Chunk(document.name, page.number, len(chunks), text, tokens, lines))
    return chunks


def _windows(text: str, size: int, overlap: int) -> list[tuple[int, int, int]]:
    """(first character, end character, tokens) of each window of at most `size` tokens over `text`."""
    offsets = _tokenizer().encode(text, add_special_tokens=False).offsets
    windows, first = [], 0
    while first < len(offsets):
        cut = _cut(text, offsets, first, min(first + size, len(offsets)))
        windows.append((offsets[first][0], offsets[cut - 1][1], cut - first))
        if cut == len(offsets):
            break
        first = max(first + 1, cut - overlap)
    return windows


def _cut(text: str, offsets: list[tuple[int, int]], first: int, last: int) -> int:
    """Where a window of tokens [first, last) ends: before the last token in its final quarter that starts a word (a
    space or a new line before it), so no word is split between chunks; else at `last`."""
    if last == len(offsets):
        return last
    for i in range(last, first + (last - first) * 3 // 4, -1):
        begin = offsets[i][0]
        if begin == 0 or text[begin - 1].isspace() or text[begin].isspace():
            return i
    return last


def words(text: str) -> list[str]:
    """The lower-cased words of `text`, as BM25 counts them."""
    return re.findall(r"\w+", text.lower())
