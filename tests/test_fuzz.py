"""Property-based fuzzing of every API endpoint (bench/reliability.py has the strategies and a bigger run)."""

import pytest
from gradio_client import Client

from bench.reliability import fuzz, leaked, load, start_app


@pytest.fixture(scope="module")
def fuzz_app(cache_dir):
    demo, url = start_app(cache_dir, allow_code_execution=True, max_input_tokens=1024)
    yield Client(url, verbose=False), url
    demo.close()


def test_every_endpoint_survives_hostile_inputs_without_leaking_tracebacks(fuzz_app):
    client, _ = fuzz_app
    report = fuzz(client, examples=8, timeout_s=60)
    print(f"fuzzed {report['tried']} inputs: {report['endpoints']}")
    assert set(report["endpoints"]) >= {"/chat", "/code", "/run_code", "/math", "/multilingual", "/vision", "/compare",
                                         "/arena_battle", "/arena_vote", "/leaderboard", "/inspect", "/guide", "/health"}
    assert all(n >= 1 for n in report["endpoints"].values()) and report["tried"] >= 8 * 10
    assert report["leaks"] == [] and report["failed"] == [] and report["crashes"] == [] and report["timeouts"] == 0
    assert report["errors_shown"] > report["tried"] / 2  # most hostile inputs are refused, with a message


def test_files_outside_the_app_are_never_served(fuzz_app):
    import urllib.error
    import urllib.request

    _, url = fuzz_app
    for path in ("/etc/passwd", "/root/.bashrc", "../../../../etc/passwd"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{url.rstrip('/')}/gradio_api/file={path}", timeout=10)
        assert refused.value.code in (403, 404)


def test_the_leak_detector_would_notice_a_traceback():
    assert leaked('Traceback (most recent call last):\n  File "/app/x.py", line 3')
    assert not leaked("Type a prompt first.")
    assert not leaked("Unknown language 'site-packages'", sent="('site-packages',)")  # the caller's own words echoed


def test_sixteen_clients_at_once_all_get_answers(fuzz_app):
    _, url = fuzz_app
    result = load(url, clients=16, requests_each=1)
    assert result["failures"] == 0, result["failure_examples"]
    assert result["successes"] == 16 and result["p95_s"] is not None
