"""A light first page: the page and its API responses travel gzipped (streamed answers still arrive token by token),
and heavy components load with their tab."""

import json
import os
import time

import httpx


def test_the_page_is_sent_compressed(app):
    client, _ = app
    plain = httpx.get(client.src, headers={"Accept-Encoding": "identity"}, timeout=60)
    packed = httpx.get(client.src, headers={"Accept-Encoding": "gzip"}, timeout=60)
    assert packed.headers["content-encoding"] == "gzip" and "content-encoding" not in plain.headers
    assert packed.text == plain.text  # the same page
    assert int(packed.headers["content-length"]) * 3 < len(plain.content)  # at most a third of the bytes
    config = httpx.get(client.src + "config", headers={"Accept-Encoding": "gzip"}, timeout=60)
    assert config.headers["content-encoding"] == "gzip"


def test_the_first_page_fetches_no_code_editor_no_table_and_no_raw_html(app):
    """Gradio fetches the code of each component type visible in the page's configuration, whichever tab it is in."""
    client, _ = app
    components = httpx.get(client.src + "config", timeout=60).json()["components"]
    heavy = [c for c in components if c["type"] in ("code", "dataframe")]
    assert len(heavy) >= 9 and not any(c["props"]["visible"] for c in heavy)  # shown when their tab opens
    assert not any(c["type"] == "html" for c in components)


def test_a_streamed_answer_still_arrives_token_by_token(app):
    client, _ = app
    http, session = httpx.Client(timeout=120, headers={"Accept-Encoding": "gzip"}), os.urandom(8).hex()
    config = http.get(client.src + "config").json()
    index = next(i for i, d in enumerate(config["dependencies"]) if d.get("api_name") == "chat")
    values = ["Hello", [], "demo-qwen3", "", True, 0.6, 0.95, 20, 0.0, 1.0, 0.0, 200, 0, "full", False, False, None, None]
    http.post(client.src + "gradio_api/queue/join", json={"data": values, "fn_index": index, "session_hash": session, "event_data": None,
                                                          "trigger_id": None}).raise_for_status()
    arrivals = []
    with http.stream("GET", client.src + f"gradio_api/queue/data?session_hash={session}") as response:
        assert "content-encoding" not in response.headers  # server-sent events are never held back to be compressed
        for line in response.iter_lines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message["msg"] == "process_generating":
                    arrivals.append(time.perf_counter())
                if message["msg"] == "process_completed":
                    break
    assert len(arrivals) >= 5 and arrivals[-1] - arrivals[0] > 0.05  # many updates, spread over the answer's time
