"""Escape and exhaustion attempts against the code sandbox: each is stopped or refused."""

import pytest

from qwen_playground import sandbox
from qwen_playground.sandbox import Limits, SandboxUnavailable, run_python

pytestmark = pytest.mark.skipif(sandbox.unavailable_reason() is not None, reason=str(sandbox.unavailable_reason()))
FAST = Limits(cpu_s=2, wall_s=4)


def test_a_normal_script_runs_in_its_own_working_directory():
    result = run_python("import os\nopen('out.txt', 'w').write('ok')\nprint(open('out.txt').read(), os.getcwd(), os.getuid())", FAST)
    assert result.stdout.split() == ["ok", "/work", "65534"] and result.exit_code == 0 and result.stopped_because is None


def test_errors_come_back_with_exit_code_and_stderr():
    result = run_python("raise SystemExit('bad input')", FAST)
    assert result.exit_code == 1 and "bad input" in result.stderr


def test_infinite_loop_hits_the_cpu_limit():
    result = run_python("while True: pass", FAST)
    assert result.stopped_because.startswith("CPU-time limit") and result.exit_code is None


def test_sleeping_forever_hits_the_wall_time_limit():
    result = run_python("import time; time.sleep(60)", FAST)
    assert result.stopped_because.startswith("wall-time limit") and result.duration_s < 10


def test_fork_bomb_hits_the_process_limit():
    result = run_python("import os\nwhile True:\n    os.fork()", FAST)
    assert result.stopped_because in ("process limit (32)", "CPU-time limit (2 s)") or result.stopped_because.startswith("wall")


def test_a_gigabyte_print_is_stopped():
    result = run_python("print('x' * 10**9)", FAST)
    assert result.stopped_because in ("memory limit (512 MB)", "output limit (64,000 bytes)")
    assert len(result.stdout) <= Limits().output_bytes


def test_endless_output_hits_the_output_limit():
    result = run_python("while True: print('spam' * 100)", FAST)
    assert result.stopped_because == "output limit (64,000 bytes)" and len(result.stdout) <= 64_000


def test_memory_hog_hits_the_memory_limit():
    result = run_python("a = bytearray(2 * 10**9)", FAST)
    assert result.stopped_because == "memory limit (512 MB)"


def test_big_file_hits_the_file_size_limit():
    result = run_python("open('big', 'wb').write(b'0' * 50_000_000)", FAST)
    assert result.stopped_because.startswith("file-size limit")


@pytest.mark.parametrize("code", [
    "print(open('/etc/passwd').read())",
    "print(open('/etc/hostname').read())",
    "print(open('/root/.bashrc').read())",
    "print(open('/proc/1/environ').read())",
    "import os; print(os.listdir('/work/..')); print(open('/tmp/x', 'w'))",
])
def test_reading_or_writing_outside_the_working_directory_is_refused(code):
    result = run_python(code, FAST)
    assert result.exit_code == 1 and ("FileNotFoundError" in result.stderr or "Read-only file system" in result.stderr
                                      or "PermissionError" in result.stderr)


def test_writing_next_to_the_working_directory_is_refused():
    result = run_python("open('../escape.txt', 'w').write('x')", FAST)
    assert result.exit_code == 1 and "Read-only file system" in result.stderr


def test_no_network():
    result = run_python("import socket; socket.create_connection(('127.0.0.1', 7860), timeout=2)", FAST)
    assert result.exit_code == 1 and ("Network is unreachable" in result.stderr or "Connection refused" in result.stderr)


def test_missing_tools_give_an_install_hint(monkeypatch):
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        run_python("print(1)")
