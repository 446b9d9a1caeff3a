"""Records from an uploaded CSV or JSONL file, each with its line number, or a refusal that names the line.

The Batch and Fine-tune tabs read their files here (an upload, or else one of
their shipped sets, listed in a folder's `sets.yaml`); each then checks its
own required fields, quoting `Record.line` when a row is wrong.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import TaskError, one_of

JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")


@dataclass(frozen=True)
class Record:
    line: int
    values: dict  # field -> value (CSV: non-empty strings; JSONL: any JSON value)


def shipped_sets(folder: Path) -> dict[str, dict]:
    """A folder's shipped sets by name: each entry names its `file` (in that folder) and describes it."""
    return yaml.safe_load((folder / "sets.yaml").read_text(encoding="utf-8"))


def source(file: str | Path | None, shipped: str | None, folder: Path, what: str) -> tuple[bytes, str]:
    """(bytes, name) of the upload, or else of the shipped set named `shipped`; TaskError when there is neither."""
    if file:
        return Path(file).read_bytes(), Path(file).name
    if shipped:
        sets = shipped_sets(folder)
        one_of(shipped, sets, "example set", "example")
        return (folder / sets[shipped]["file"]).read_bytes(), sets[shipped]["file"]
    raise TaskError(f"Upload {what}, or pick an example set.", "file")


def read_records(data: bytes, name: str, fields: tuple[str, ...], csv_required: tuple[str, ...]) -> list[Record]:
    """The file's non-empty rows: CSV (a header row naming `csv_required` columns) or JSONL (one object per line),
    only `fields` allowed. TaskError (on the input "file") says the line and the reason."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise TaskError(f"{name}: line {line} is not UTF-8 text. Save the file as UTF-8.", "file") from None
    if not text.strip():
        raise TaskError(f"{name} is empty: give one example per line (JSONL) or per row (CSV with a header row).", "file")
    records = _jsonl(text, name) if name.lower().endswith(JSONL_SUFFIXES) else _csv(text, name, csv_required)
    for record in records:
        if unknown := [k for k in record.values if k not in fields]:
            raise TaskError(f"{name}: line {record.line}: unknown field '{unknown[0]}'; the fields are {', '.join(fields)}.", "file")
    if not records:
        raise TaskError(f"{name} has no rows.", "file")
    return records


SEPARATORS = ",;\t|"


def separator(text: str) -> str:
    """The CSV's cell separator, from its header line: a comma, or the semicolon, tab or bar a spreadsheet in another
    locale writes."""
    header = text.split("\n", 1)[0]
    try:
        return csv.Sniffer().sniff(header, delimiters=SEPARATORS).delimiter
    except csv.Error:  # one column, or no separator it can tell: a comma
        return ","


def _jsonl(text: str, name: str) -> list[Record]:
    records = []
    for line, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            values = json.loads(raw)
        except json.JSONDecodeError as e:
            raise TaskError(f"{name}: line {line} is not JSON ({e.msg}). Each line must be one JSON object.", "file") from None
        if not isinstance(values, dict):
            raise TaskError(f"{name}: line {line} is not a JSON object.", "file")
        records.append(Record(line, values))
    return records


def _csv(text: str, name: str, required: tuple[str, ...]) -> list[Record]:
    reader = csv.DictReader(io.StringIO(text), delimiter=separator(text))
    header = [h.strip() for h in reader.fieldnames or []]
    if missing := [column for column in required if column not in header]:
        raise TaskError(f"{name}: line 1 (the header) has no '{missing[0]}' column; it has: {', '.join(header) or 'nothing'}.", "file")
    reader.fieldnames = header
    records = []
    try:
        for values in reader:
            if None in values:
                raise TaskError(f"{name}: line {reader.line_num} has more cells than the header.", "file")
            if any((v or "").strip() for v in values.values()):
                records.append(Record(reader.line_num, {k: v for k, v in values.items() if v not in (None, "")}))
    except csv.Error as e:
        raise TaskError(f"{name}: line {reader.line_num}: {e}.", "file") from None
    return records
