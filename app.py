"""Start Qwen Playground: `python app.py [--demo] [--config my.yaml] [--port 7860] ...`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Qwen Playground: try, teach and compare Qwen models.")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"), help="address to listen on (0.0.0.0 for a network)")
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    p.add_argument("--share", action="store_true", help="create a temporary public gradio.live link")
    p.add_argument("--config", default=os.environ.get("QWEN_PLAYGROUND_CONFIG"),
                   help="YAML file adding models, changing routes or settings (default: $QWEN_PLAYGROUND_CONFIG)")
    p.add_argument("--demo", action="store_true", help="use tiny offline demo models (no downloads)")
    p.add_argument("--open", action="store_true", help="open the page in a browser")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], help="where local models run")
    p.add_argument("--dtype", choices=["auto", "bfloat16", "float16", "float32"], help="weights dtype for local models")
    p.add_argument("--engine", choices=["auto", "transformers", "llama.cpp"],
                   help="engine for local text models (auto: llama.cpp on a CPU, transformers on a GPU and for images)")
    p.add_argument("--memory-budget-gb", type=float, help="memory for loaded models; least recently used are unloaded beyond it")
    p.add_argument("--max-input-tokens", type=int, help="longest conversation accepted, in tokens")
    p.add_argument("--cache-dir", help="where demo models are built")
    p.add_argument("--allow-code-execution", action="store_true", default=None,
                   help="let the Code tab run Python in a sandbox (needs bubblewrap; never on a public Space)")
    p.add_argument("--public", action="store_true", default=None, help="public deployment: per-user rate limits on (automatic on Spaces)")
    p.add_argument("--log-prompts", action="store_true", default=None, help="write prompt text into the private request log")
    return p.parse_args(argv)


def startup_summary(config, service_line: str, url: str, share_url: str | None) -> str:
    """What an operator needs to see once: where, which mode, which models, what is switched on."""
    registry, settings = config.registry, config.settings
    mode = f"demo mode ({config.demo_reason})" if config.demo else "real models (weights download on first use)"
    routes = "; ".join(f"{tab}: {route.default}" + (f" (+{len(route.alternatives)})" if route.alternatives else "")
                       for tab, route in registry.routes.items())
    lines = [f"Qwen Playground at {url}", f"  {mode}", f"  tabs: {routes}", f"  local models: {service_line}"]
    if registry.endpoints:
        lines.append(f"  endpoints: {', '.join(registry.endpoints)}")
    switches = [("public mode, rate limits on" if settings.rate_limits_active else "rate limits off"),
                ("code execution on" if settings.allow_code_execution else "code execution off (--allow-code-execution)")]
    lines.append("  " + "; ".join(switches))
    lines.append(f"  public link: {share_url}" if share_url else "  public link: start with --share")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)  # before the heavy imports: --help answers at once
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)  # torchao's import-time deprecation notices
    logging.getLogger("httpx").setLevel(logging.WARNING)

    from qwen_playground.backends import prepare
    from qwen_playground.core.config import load_config
    from qwen_playground.core.devices import on_zero_gpu
    from qwen_playground.core.prompts import TemplateError
    from qwen_playground.core.registry import RegistryError
    from qwen_playground.ui import build_demo, launch_options

    try:
        config = load_config(args.config, demo=args.demo, device=args.device, dtype=args.dtype, engine=args.engine,
                             memory_budget_gb=args.memory_budget_gb, max_input_tokens=args.max_input_tokens, cache_dir=args.cache_dir,
                             allow_code_execution=args.allow_code_execution, public=args.public, log_prompts=args.log_prompts)
        prepare.start(config)  # Chat's default model files made on another core while the page builds
        demo = build_demo(config)
    except (RegistryError, TemplateError) as e:
        sys.exit(f"Configuration problem:\n{e}")
    if on_zero_gpu():  # ZeroGPU registers the app's spaces.GPU functions at launch: the engine, which makes them, first
        demo.service.wait_started()
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, inbrowser=args.open, quiet=True,
                prevent_thread_lock=True, **launch_options())
    print(startup_summary(config, demo.service.status(), demo.local_url, demo.share_url), flush=True)
    threading.Thread(target=say_when_started, args=(demo.service,), daemon=True).start()  # the page is up; the engine loads now
    demo.block_thread()


def say_when_started(service) -> None:
    """The start-up summary's last line: the local models' line once the engine has loaded in the background."""
    began = time.perf_counter()
    service.wait_started()
    print(f"  local models ready in {time.perf_counter() - began:.1f} s: {service.status()}", flush=True)


if __name__ == "__main__":
    main()
