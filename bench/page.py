"""How light the first page is: Qwen Playground beside a bare Gradio chat page, measured in one run.

Both pages are served here (the demo app on its bench cache, warmed with one answer first; a bare
`gr.ChatInterface`) and opened in the browser the tests use (Debian's Chromium through Playwright), each in
a fresh browser context (nothing cached), `--rounds` times; the medians are printed side by side:

- bytes transferred until the page is ready (compressed sizes, headers included), and the largest resource;
- first contentful paint and largest contentful paint;
- main-thread busy time until ready, and the blocking time of long tasks after the first paint (as Lighthouse's
  total blocking time counts it: each task's time over 50 ms).

With `--lighthouse PATH_TO_LIGHTHOUSE_CLI` (Lighthouse from the npm registry, not a dependency of the app) it also
runs Lighthouse's desktop preset on both pages and prints its performance, accessibility and best-practices scores.

    python bench/page.py [--rounds 3] [--lighthouse node_modules/.bin/lighthouse]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"]
READY = {"app": "textarea[placeholder^='Message Qwen']", "bare": "textarea"}  # what a person types into first
OBSERVE = """
window.__longTasks = [];
new PerformanceObserver((list) => window.__longTasks.push(...list.getEntries().map((e) => [e.startTime, e.duration])))
  .observe({type: 'longtask', buffered: true});
window.__lcp = 0;
new PerformanceObserver((list) => { for (const e of list.getEntries()) window.__lcp = e.startTime; })
  .observe({type: 'largest-contentful-paint', buffered: true});
"""


def bare_page(port: int) -> None:
    """A bare Gradio chat page, the yardstick (run in a child process)."""
    import gradio as gr

    gr.ChatInterface(lambda message, history: message).launch(server_name="127.0.0.1", server_port=port, quiet=True)


def measure(browser, url: str, ready: str) -> dict:
    context = browser.new_context(viewport={"width": 1350, "height": 940})
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.add_init_script(OBSERVE)
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Performance.enable")
    sizes: dict[str, int] = {}
    urls: dict[str, str] = {}
    cdp.on("Network.responseReceived", lambda e: urls.__setitem__(e["requestId"], e["response"]["url"]))
    cdp.on("Network.loadingFinished", lambda e: sizes.__setitem__(e["requestId"], e["encodedDataLength"]))
    page.goto(url)
    page.locator(ready).first.wait_for()
    page.wait_for_function("() => document.querySelectorAll('.generating, .pending').length === 0")  # its load events answered
    page.wait_for_timeout(1000)  # late long tasks and paints are counted too (the app keeps a connection open: no network idle)
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    fcp = page.evaluate("performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? 0")
    lcp = page.evaluate("window.__lcp")
    tasks = page.evaluate("window.__longTasks")
    context.close()
    largest = max(sizes, key=sizes.get)
    return {"bytes": sum(sizes.values()), "requests": len(sizes), "largest": (urls.get(largest, "?").split("?")[0][-60:], sizes[largest]),
            "fcp_s": fcp / 1000, "lcp_s": lcp / 1000, "main_thread_s": metrics.get("TaskDuration", 0.0),
            "blocking_ms": sum(max(0.0, duration - 50) for start, duration in tasks if start + duration > fcp)}


def lighthouse(cli: str, url: str) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.json"
        flags = " ".join(["--headless=new", *BROWSER_ARGS, f"--user-data-dir={folder}/profile"])
        subprocess.run([cli, url, "--preset=desktop", "--quiet", "--output=json", f"--output-path={report}", f"--chrome-flags={flags}",
                        "--only-categories=performance,accessibility,best-practices"],
                       env=dict(os.environ, CHROME_PATH=CHROMIUM), check=True, timeout=300)
        data = json.loads(report.read_text())
    scores = {name: round(100 * category["score"]) for name, category in data["categories"].items()}
    audits = data["audits"]
    scores["tbt_ms"] = audits["total-blocking-time"]["numericValue"]
    scores["transfer_kib"] = audits["total-byte-weight"]["numericValue"] / 1024
    return scores


def serve(command: list[str], port: int, env: dict | None = None) -> subprocess.Popen:
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
                return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command[1]} did not serve its page") from None
            time.sleep(0.2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lighthouse", help="the Lighthouse CLI (node_modules/.bin/lighthouse)")
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "qwen-playground-bench")
    parser.add_argument("--bare", type=int, help=argparse.SUPPRESS)  # the child process serving the bare page
    args = parser.parse_args(argv)
    if args.bare:
        bare_page(args.bare)
        return {}
    from playwright.sync_api import sync_playwright

    ports = {"bare": free_port(), "app": free_port()}
    env = dict(os.environ, QWEN_PLAYGROUND_CONFIG="")
    servers = [serve([sys.executable, __file__, "--bare", str(ports["bare"])], ports["bare"]),
               serve([sys.executable, str(ROOT / "app.py"), "--demo", "--port", str(ports["app"]), "--cache-dir", str(args.cache_dir)], ports["app"], env)]
    results: dict[str, dict] = {}
    try:
        from gradio_client import Client

        Client(f"http://127.0.0.1:{ports['app']}/", verbose=False).predict("Hello", api_name="/chat")  # started, warm, idle
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            for name, port in ports.items():
                runs = [measure(browser, f"http://127.0.0.1:{port}/", READY[name]) for _ in range(args.rounds)]
                results[name] = {key: statistics.median(r[key] for r in runs) for key in runs[0] if key != "largest"}
                results[name]["largest"] = runs[-1]["largest"]
            browser.close()
        if args.lighthouse:
            for name, port in ports.items():
                results[name]["lighthouse"] = lighthouse(args.lighthouse, f"http://127.0.0.1:{port}/")
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)
    print_table(results, args.rounds)
    return results


def print_table(results: dict, rounds: int) -> None:
    bare, app = results["bare"], results["app"]
    rows = [("bytes transferred (KiB)", "bytes", 1 / 1024, ".0f"), ("requests", "requests", 1, ".0f"), ("first contentful paint (s)", "fcp_s", 1, ".2f"),
            ("largest contentful paint (s)", "lcp_s", 1, ".2f"), ("main-thread busy until ready (s)", "main_thread_s", 1, ".2f"),
            ("blocking time after first paint (ms)", "blocking_ms", 1, ".0f")]
    print(f"\nThe first page, median of {rounds} fresh loads each (Debian Chromium, 1350x940)")
    print(f"    {'':<40}{'bare Gradio':>14}{'Qwen Playground':>18}{'ratio':>8}")
    for label, key, scale, spec in rows:
        ratio = app[key] / bare[key] if bare[key] else float("nan")
        print(f"    {label:<40}{bare[key] * scale:>14{spec}}{app[key] * scale:>18{spec}}{ratio:>8.2f}")
    print(f"    largest resource: bare {bare['largest'][0]} {bare['largest'][1] / 1024:.0f} KiB; "
          f"app {app['largest'][0]} {app['largest'][1] / 1024:.0f} KiB")
    if "lighthouse" in app:
        print("    Lighthouse (desktop): " + "; ".join(f"{name}: bare {bare['lighthouse'][name]:.0f}, app {app['lighthouse'][name]:.0f}"
                                                 for name in app["lighthouse"]))


if __name__ == "__main__":
    main()
