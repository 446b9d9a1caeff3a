"""A light first page: the page and its API responses travel gzipped (streamed answers still arrive token by token),
and only the opening tab is laid out."""

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


def test_the_first_page_lays_out_only_the_opening_tab(app):
    """Gradio's page makes every component in its layout, and fetches the code of its types, before anyone can type.
    Only Chat's are laid out; every other tab's stay in the configuration (their events and API) and are placed
    when the tab first opens (ui/lazy.py)."""
    client, _ = app
    config = httpx.get(client.src + "config", timeout=60).json()
    components = {c["id"]: c for c in config["components"]}

    def ids(node):
        yield node["id"]
        for child in node.get("children", []):
            yield from ids(child)

    def tabs(node):
        if components.get(node["id"], {}).get("type") == "tabitem":
            yield components[node["id"]]["props"]["label"], set(ids(node))
        for child in node.get("children", []):
            yield from tabs(child)

    laid_out, by_tab = set(ids(config["layout"])), dict(tabs(config["layout"]))
    assert len(by_tab) >= 14 and len(by_tab["Chat"]) > 40
    assert all(len(held) <= 3 for tab, held in by_tab.items() if tab != "Chat"), by_tab  # the tab, a place for its parts
    heavy = [c for c in components.values() if c["type"] in ("code", "dataframe")]
    assert len(heavy) >= 9 and not any(c["id"] in laid_out or c["props"]["visible"] for c in heavy)
    assert not any(c["type"] == "html" for c in components.values())


def test_a_streamed_answer_still_arrives_token_by_token(app):
    client, _ = app
    http, session = httpx.Client(timeout=120, headers={"Accept-Encoding": "gzip"}), os.urandom(8).hex()
    config = http.get(client.src + "config").json()
    index = next(i for i, d in enumerate(config["dependencies"]) if d.get("api_name") == "chat")
    values = ["Hello", [], "demo-qwen3", "", True, 0.6, 0.95, 20, 0.0, 1.0, 0.0, 200, 0, "full", False, False, None, [], "", False,
              "", 4, None]  # ... images, tools, reasoning effort, keep reasoning, drafts, draft length, tree
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
