"""Run untrusted Python in a locked box: bubblewrap namespaces plus resource limits.

The code runs as user `nobody` in fresh namespaces (no network, own PIDs,
own mounts), sees only the Python standard library, system libraries and a
new empty working directory, and is held by CPU-time, wall-time, memory,
process-count, file-size and output-size limits. Anything else on the
machine (the app, /etc, home folders) does not exist inside.

Needs `bwrap` (Debian package bubblewrap) and `setpriv` (util-linux); the app
only offers running code when the operator enables it (--allow-code-execution).
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

NOBODY = 65534


@dataclass(frozen=True)
class Limits:
    cpu_s: int = 5
    wall_s: float = 10.0
    memory_mb: int = 512
    processes: int = 32
    output_bytes: int = 64_000
    file_bytes: int = 10_000_000


@dataclass(frozen=True)
class RunResult:
    stdout: str
    stderr: str
    exit_code: int | None
    duration_s: float
    stopped_because: str | None = None  # the limit that ended the run, in words

    def summary(self) -> str:
        status = f"exit code {self.exit_code}" if self.exit_code is not None else "killed"
        why = f" · stopped: {self.stopped_because}" if self.stopped_because else ""
        return f"{status} · {self.duration_s:.2f} s{why}"


class SandboxUnavailable(RuntimeError):
    pass


def unavailable_reason() -> str | None:
    """Why code cannot run here, or None when it can."""
    missing = [tool for tool in ("bwrap", "setpriv") if shutil.which(tool) is None]
    if missing:
        return f"Running code needs {' and '.join(missing)} (Debian/Ubuntu: apt-get install bubblewrap util-linux)."
    if os.geteuid() != 0:
        return "Running code needs the app to start as root, so the sandbox can drop to user 'nobody' in its own namespaces."
    return None


def _command(python_prefix: Path, workdir: Path) -> list[str]:
    """bwrap arguments: a read-only root with only system libraries and Python, /work writable."""
    shown = [Path(p) for p in ("/usr/lib", "/usr/lib64", "/usr/lib32", "/etc/ld.so.cache") if Path(p).exists()] + [python_prefix]
    mounts: list[str] = []
    made: set[Path] = set()
    for path in shown:
        for parent in reversed(path.parents[:-1]):  # traversable by `nobody`, whatever they are outside (/root is 0700)
            if parent not in made:
                made.add(parent)
                mounts += ["--perms", "0755", "--dir", str(parent)]
        mounts += ["--ro-bind", str(path), str(path)]
    return [
        "bwrap", "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
        "--die-with-parent", "--new-session",
        *mounts, "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
        "--ro-bind", shutil.which("setpriv"), "/setpriv",
        "--bind", str(workdir), "/work", "--chdir", "/work",
        "--proc", "/proc", "--dev", "/dev", "--remount-ro", "/",
        "--clearenv", "--setenv", "HOME", "/work", "--setenv", "TMPDIR", "/work", "--setenv", "PYTHONDONTWRITEBYTECODE", "1",
        "--", "/setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--",
        str(python_prefix / "bin" / "python3"), "-I", "main.py",
    ]


def _set_limits(limits: Limits) -> None:
    """Runs in the child before exec: the limits hold for everything it starts."""
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * 2**20,) * 2)
    resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes,) * 2)  # counted for `nobody`, not for root
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes,) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_python(code: str, limits: Limits = Limits()) -> RunResult:
    """Run `code` as a Python script in the sandbox and report what happened."""
    reason = unavailable_reason()
    if reason:
        raise SandboxUnavailable(reason)
    workdir = Path(tempfile.mkdtemp(prefix="qp-run-"))
    try:
        (workdir / "main.py").write_text(code, encoding="utf-8")
        for path in (workdir, workdir / "main.py"):
            os.chown(path, NOBODY, NOBODY)
        return _run(_command(Path(sys.base_prefix), workdir), limits)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run(command: list[str], limits: Limits) -> RunResult:
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, preexec_fn=lambda: _set_limits(limits))
    stopped: list[str] = []
    buffers = {"stdout": bytearray(), "stderr": bytearray()}

    def kill(why: str) -> None:
        if not stopped:
            stopped.append(why)
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # bwrap's PID namespace takes every child down with it
        except ProcessLookupError:
            pass

    def drain(name: str, stream) -> None:
        while chunk := stream.read1(65536):
            buffers[name] += chunk
            if len(buffers["stdout"]) + len(buffers["stderr"]) > limits.output_bytes:
                kill(f"output limit ({limits.output_bytes:,} bytes)")
                break

    readers = [threading.Thread(target=drain, args=(n, s), daemon=True) for n, s in (("stdout", proc.stdout), ("stderr", proc.stderr))]
    for r in readers:
        r.start()
    try:
        proc.wait(timeout=limits.wall_s)
    except subprocess.TimeoutExpired:
        kill(f"wall-time limit ({limits.wall_s:g} s)")
        proc.wait()
    for r in readers:
        r.join(timeout=2)
    code = proc.returncode
    stderr = bytes(buffers["stderr"][: limits.output_bytes]).decode("utf-8", "replace")
    # bwrap reports a child killed by signal N as exit code 128 + N
    signum = -code if code < 0 else code - 128 if code > 128 else None
    by_signal = {signal.SIGXCPU: f"CPU-time limit ({limits.cpu_s} s)", signal.SIGXFSZ: f"file-size limit ({limits.file_bytes:,} bytes)",
                 signal.SIGKILL: "killed by the system (memory?)"}
    if not stopped:
        if signum in by_signal:
            stopped.append(by_signal[signum])
        elif "File too large" in stderr:  # Python ignores SIGXFSZ and raises instead
            stopped.append(f"file-size limit ({limits.file_bytes:,} bytes)")
        elif "MemoryError" in stderr:
            stopped.append(f"memory limit ({limits.memory_mb} MB)")
        elif "BlockingIOError" in stderr and "Resource temporarily unavailable" in stderr:
            stopped.append(f"process limit ({limits.processes})")
    return RunResult(
        stdout=bytes(buffers["stdout"][: limits.output_bytes]).decode("utf-8", "replace"),
        stderr=stderr,
        exit_code=None if signum else code,
        duration_s=time.perf_counter() - start,
        stopped_because=stopped[0] if stopped else None,
    )
