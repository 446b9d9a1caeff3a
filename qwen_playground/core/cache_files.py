"""Folders made once in the cache folder (converted tokenizers, demo models), safely shared.

The app, its start-up helper (`backends/prepare.py`) and a second app on the
same cache may all want one folder at once: one writes it, the others wait and
then find it made; a reader never sees half a folder (it is written beside its
final name, then renamed into place).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path
from typing import Callable

from filelock import FileLock

_lock = threading.RLock()  # re-entrant: a demo build makes its tokenizer's folder inside its own


def made_once(folder: Path, mark: str, write: Callable[[Path], object]) -> None:
    """`write` the folder unless its file `mark` is there: one writer at a time across threads and processes."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with _lock, FileLock(f"{folder}.lock"):
        if not (folder / mark).is_file():
            _staged(folder, write)


def _staged(folder: Path, write: Callable[[Path], object]) -> None:
    """`write` into a fresh folder beside `folder`, then rename it into place: another process sees all or nothing."""
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    try:
        write(staging)
        staging.rename(folder)
    except OSError:
        if not folder.is_dir():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
