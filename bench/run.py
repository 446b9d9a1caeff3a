"""Speed and memory benchmarks: every ratio measured in one run, on one machine.

    python bench/run.py            # Qwen2.5-0.5B-sized random model + demo models (~5 min on 2 CPU cores)
    python bench/run.py --quick    # tiny models only (~1 min), for a smoke run
    python bench/run.py --size 7b  # Qwen2.5-7B-sized (for a GPU)

Sections: (1) app overhead, /chat as its page calls it vs raw `generate`;
(2) decode efficiency at batch 1 vs the memory-bandwidth limit, per engine and precision,
and the app's default path on this machine (llama.cpp on a CPU) against the transformers path it replaced;
(3) 1/2/4/8 simultaneous users on one model; (4) a 3-pane comparison vs its
slowest pane; (5) cold start; (6) one decode per family at real shapes
(Qwen3-0.6B vs Qwen3.5-0.8B vs Qwen3.5-2B, random weights, the app's
precision), which the CPU defaults are chosen from; (7) 16 prompts through the
Batch tab's /batch vs the same prompts as /chat calls one by one; (8) what
"why this token?" costs: a request without alternatives on the engine as
shipped vs an engine without the recorder, and a request that asks; (9) on a CPU, the transformers dtype the app
chose against both dtypes timed end to end (a typical prompt and answer) on the bench model; (10) speech to text:
the real-time factor (seconds of compute per second of sound) of a Qwen3-ASR-0.6B-shaped random model, the audio
encoder and the decoder's transcript of a typical length; (11) documents: Qwen3-Embedding-0.6B-shaped chunks embedded
per second, the time to index a 100-page text, and the time to the first answer token with retrieval vs the whole
document in the prompt; (12) a mixture of experts: decode tokens/s on the llama.cpp engine of a model shaped like
Qwen3.6-35B-A3B (its width, 256 experts of which 8 routed + 1 shared per token, its attention heads and vocabulary) but
two layers deep, against the bandwidth limit from the bytes a token reads (its active experts) and from every weight;
(13) speculative decoding on the llama.cpp engine (the bench model, 8-bit, draft length 4): plain decode against
guesses always right at no cost (the ceiling), the model as its own draft, and guesses always wrong (the floor).
Results are appended to bench/results.jsonl and the table shows earlier runs beside this one.

    python bench/run.py --skip overhead decode concurrency compare cold_start batch   # (6) alone (~5 min on 2 cores)
    python bench/run.py --skip overhead decode concurrency compare cold_start families  # (7) alone
    python bench/run.py --quick --skip overhead decode concurrency compare cold_start batch alternatives precision  # (10) alone
    python bench/run.py --skip overhead decode concurrency compare cold_start batch alternatives precision families transcription  # (11)
    python bench/run.py --skip overhead decode concurrency compare cold_start batch alternatives precision families transcription documents  # (12)
    python bench/run.py --skip overhead decode concurrency compare cold_start batch alternatives precision families transcription documents moe  # (13)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import torch  # noqa: E402
import yaml  # noqa: E402
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, Qwen2Config, Qwen2ForCausalLM, TextIteratorStreamer  # noqa: E402

from qwen_playground.backends import demo, precision  # noqa: E402
from qwen_playground.core.config import builtin_families  # noqa: E402
from qwen_playground.core.generation import PRECISIONS, SamplingParams  # noqa: E402

RESULTS = ROOT / "bench" / "results.jsonl"
SIZES = {  # Qwen2.5 decoder shapes (public configs)
    "0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2, tie_word_embeddings=True),
    "7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4, tie_word_embeddings=False),
}
PROMPT = "Explain in one paragraph why the sky is blue."
LLAMA_CPP_USERS = (1, 4, 8)
LLAMA_CPP_PRECISION = "8-bit"  # Q8_0: llama.cpp's fastest decode here, and the llama-server figure the target came from
QWEN25 = builtin_families()["qwen2.5"]  # its demo recipe holds the real vocabulary and special-token ids


def build_sized_model(size: str, folder: Path) -> Path:
    """A random-weight Qwen2.5 of the real size, with the real tokenizer; nothing downloaded."""
    if (folder / "config.json").exists():
        return folder
    torch.manual_seed(0)
    ids = {k: QWEN25.demo.config[k] for k in ("vocab_size", "bos_token_id", "eos_token_id", "pad_token_id")}
    config = Qwen2Config(max_position_embeddings=32768, **ids, **SIZES[size])
    with torch.device("cpu"):
        model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = [ids["eos_token_id"]]
    model.to(torch.bfloat16).save_pretrained(folder)
    demo.load_tokenizer(QWEN25).save_pretrained(folder)
    return folder


# Real decoder shapes (model cards and config.json) for the per-family comparison; random weights, no download.
FAMILY_SHAPES = {
    "Qwen3-0.6B": ("qwen3", dict(vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
                                 num_key_value_heads=8, head_dim=128, tie_word_embeddings=True)),
    "Qwen3.5-0.8B": ("qwen3_5_text", dict(vocab_size=248320, hidden_size=1024, intermediate_size=3584, num_hidden_layers=24,
                                          num_attention_heads=8, num_key_value_heads=2, head_dim=256, linear_num_key_heads=16,
                                          linear_num_value_heads=16, linear_key_head_dim=128, linear_value_head_dim=128,
                                          tie_word_embeddings=True)),
    "Qwen3.5-2B": ("qwen3_5_text", dict(vocab_size=248320, hidden_size=2048, intermediate_size=6144, num_hidden_layers=24,
                                        num_attention_heads=8, num_key_value_heads=2, head_dim=256, linear_num_key_heads=16,
                                        linear_num_value_heads=16, linear_key_head_dim=128, linear_value_head_dim=128,
                                        tie_word_embeddings=True)),
}


# Qwen3-ASR-0.6B's shape (config.json): an 18-layer audio encoder of width 896 before Qwen3-0.6B's decoder
ASR_SHAPE = {"audio_config": dict(num_mel_bins=128, encoder_layers=18, encoder_attention_heads=14, encoder_ffn_dim=3584, d_model=896,
                                  output_dim=1024, downsample_hidden_size=480),
             "text_config": dict(vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
                                 num_key_value_heads=8, head_dim=128, max_position_embeddings=65536, tie_word_embeddings=True)}
# Qwen3.6-35B-A3B's layer (its card; transformers' Qwen3_5MoeTextConfig defaults): width 2048, 256 experts of 512 with
# 8 routed + 1 shared per token, 16 Q / 2 KV heads of 256, Gated DeltaNet 32 V / 16 QK heads of 128, the real vocabulary;
# two layers (one linear-attention, one full) instead of 40, so it fits this machine (2.7B parameters, 5.4 GB in bf16).
MOE_SHAPE = dict(vocab_size=248320, hidden_size=2048, num_hidden_layers=2, layer_types=["linear_attention", "full_attention"],
                 full_attention_interval=2, num_attention_heads=16, num_key_value_heads=2, head_dim=256, linear_num_key_heads=16,
                 linear_num_value_heads=32, linear_key_head_dim=128, linear_value_head_dim=128, num_experts=256, num_experts_per_tok=8,
                 moe_intermediate_size=512, shared_expert_intermediate_size=512, tie_word_embeddings=False, bos_token_id=248044,
                 eos_token_id=248046, pad_token_id=248044)
TRANSCRIPT_TOKENS_PER_S = 3.5  # about 150 spoken words a minute, as Qwen's tokenizer cuts English
CLIP_SECONDS = (5, 20)


@torch.no_grad()
def section_transcription(dtype: torch.dtype, cache: Path) -> list[dict]:
    """Real-time factor of speech to text on Qwen3-ASR-0.6B's shape: a clip through the app's own encoding (the demo
    model's real feature extractor and prompt), then the prompt pass (audio encoder included) and a transcript of a
    typical length for the clip, greedy, timed together."""
    from transformers import AutoModelForMultimodalLM

    from qwen_playground.backends.encoding import encode_request, media_processor
    from qwen_playground.core.config import load_config
    from qwen_playground.core.generation import Request

    registry = load_config(demo=True, cache_dir=cache).registry
    spec = registry.get("qwen3-asr-0.6b")
    processor = media_processor(demo.ensure(spec.family, cache))
    torch.manual_seed(0)
    model = AutoModelForMultimodalLM.from_config(AutoConfig.for_model("qwen3_asr", **ASR_SHAPE, audio_token_id=151676), dtype=dtype).eval()
    rows = []
    for seconds in CLIP_SECONDS:
        sound = (torch.randn(16000 * seconds) * 0.1).numpy()  # the content does not change the work a random model does
        inputs = encode_request(spec, Request(spec.id, [{"role": "system", "content": ""},
                                                        {"role": "user", "content": [{"type": "audio", "audio": sound}]}]),
                                processor.tokenizer, processor)
        inputs["input_features"] = inputs["input_features"].to(dtype)
        words = round(seconds * TRANSCRIPT_TOKENS_PER_S) + 4  # "language English<asr_text>" and the words
        model.generate(**inputs, max_new_tokens=2, do_sample=False)  # warm-up
        prompt_pass = _timed(lambda: model.generate(**inputs, max_new_tokens=1, min_new_tokens=1, do_sample=False))  # encoder + prefill
        compute = _timed(lambda: model.generate(**inputs, max_new_tokens=words, min_new_tokens=words, do_sample=False))
        rows.append({"seconds": seconds, "audio_tokens": int((inputs["input_ids"] == 151676).sum()), "new_tokens": words,
                     "prompt_pass_s": prompt_pass, "compute_s": compute, "rtf": compute / seconds, "precision": str(dtype).removeprefix("torch."),
                     "weights_gib": precision.weight_bytes(model) / 2**30})
        print(f"    {seconds} s clip: {compute:.2f} s of compute -> real-time factor {compute / seconds:.2f}", flush=True)
    return rows


DOCUMENT_PAGES, WHOLE_PAGES = 100, 8  # the indexed text; the document short enough to go in whole (~5K tokens)
PAGE_WORDS = 450  # a typical printed page


def page_text(number: int) -> str:
    """A page of varied English-like filler: words drawn from a fixed list, seeded by the page."""
    import random

    vocabulary = ("river valley report market harvest engine council museum winter bridge ledger orchard signal harbour "
                  "quarterly tenant archive voltage canal meadow festival printer lantern copper census vessel").split()
    rng = random.Random(number)
    return f"Page {number}. " + " ".join(rng.choice(vocabulary) + ("." if rng.random() < 0.08 else "") for _ in range(PAGE_WORDS))


def documents_config(cache: Path, model_dir: Path, embedder_dir: Path):
    from qwen_playground.core.config import load_config

    path = cache / "bench-documents.yaml"
    path.write_text(yaml.safe_dump({"models": [
        {"id": "bench", "path": str(model_dir), "family": "qwen2.5", "params_b": 0.5, "context_length": 32768,
         "presets": {"non_thinking": {"temperature": 0.0, "top_p": 1.0, "top_k": 0, "max_new_tokens": 64}}},
        {"id": "bench-embedding", "path": str(embedder_dir), "family": "qwen3-embedding", "params_b": 0.6, "context_length": 32768,
         "dimensions": 1024}],
        "routes": {"documents": {"default": "bench"}, "embedding": {"default": "bench-embedding"}}}))
    return load_config(path, demo=True, cache_dir=cache, max_input_tokens=8192)


def build_embedder(folder: Path) -> Path:
    """A random-weight model of Qwen3-Embedding-0.6B's shape (Qwen3-0.6B's decoder, no output head), real tokenizer."""
    if not (folder / "config.json").exists():
        family = builtin_families()["qwen3-embedding"]
        torch.manual_seed(0)
        config = AutoConfig.for_model("qwen3", **FAMILY_SHAPES["Qwen3-0.6B"][1], max_position_embeddings=32768)
        from transformers import AutoModel

        AutoModel.from_config(config).to(torch.bfloat16).save_pretrained(folder)
        demo.load_tokenizer(family).save_pretrained(folder)
    return folder


def first_answer_s(config, backend, job) -> float:
    """Seconds from asking to the answer's first token (retrieval, if any, included), through the Documents task."""
    from qwen_playground.tasks import documents as task

    stop, start = threading.Event(), time.perf_counter()
    for view in task.run(config, backend, job, stop):
        if view.panes[0][-1].turn is not None and view.panes[0][-1].turn.answer:
            stop.set()  # the prompt pass is what differs between the ways; the rest is the same decode
            return time.perf_counter() - start
    raise RuntimeError(view.error or "no answer")


def section_documents(app: App, model_dir: Path, cache: Path) -> dict:
    """Retrieval on Qwen3-Embedding-0.6B's shape: chunks embedded per second and the time to index a 100-page text
    (cache cleared first), then the time to the first answer token for one question on a shorter document, retrieval
    (vectors cached, as for a second question) against the whole document in the prompt, on the bench model."""
    import shutil

    from qwen_playground.backends import retrieval as engine
    from qwen_playground.tasks import documents as task
    from qwen_playground.tasks.retrieval import chunks_of, index_folder, retrieval_settings

    config = documents_config(cache, model_dir, build_embedder(cache / "qwen3-embedding-0.6b-random"))
    folder = cache / "documents"
    folder.mkdir(exist_ok=True)
    (folder / "book.txt").write_text("\n\n".join(page_text(n) for n in range(1, DOCUMENT_PAGES + 1)))
    (folder / "chapter.txt").write_text("\n\n".join(page_text(n) for n in range(1, WHOLE_PAGES + 1)))
    settings = retrieval_settings(config, retriever="Embeddings", rerank=False, embedding_model="bench-embedding")
    shutil.rmtree(index_folder(config, ""), ignore_errors=True)
    spec = config.registry.get("bench-embedding")
    loaded = engine.load(spec, cache, "auto", "auto")
    engine.embed(loaded, [page_text(0)[:1000]] * 8)  # warm-up
    book = task.read_files(config, [str(folder / "book.txt")])
    chunks = [c for group in chunks_of(config, book, settings) for c in group]
    retrieved = []
    index_s = _timed(lambda: retrieved.append(task.retrieve(config, book, "Which river crosses the valley?", settings)))
    assert retrieved[0].embedding_model == spec.id and not retrieved[0].notes, retrieved[0].notes  # computed here, by the 0.6B shape
    question = "Which river crosses the valley?"
    timings = {}
    for mode in (task.RETRIEVAL, task.WHOLE):
        job = task.prepare(config, [str(folder / "chapter.txt")], question, "bench", mode, settings)
        task.retrieve(config, job.documents, question, settings)  # the chapter's vectors cached: a second question's cost
        [planned] = task.plan(config, job)
        timings[mode] = {"prompt_tokens": task.prompt_tokens(config, config.registry.get("bench"), planned.request.messages),
                         "first_answer_s": first_answer_s(config, app.router, job)}
    row = {"pages": DOCUMENT_PAGES, "chunks": len(chunks), "chunk_tokens": settings.chunk_tokens, "index_s": index_s,
           "chunks_per_s": len(chunks) / index_s, "dtype": str(loaded.model.dtype).removeprefix("torch."), "whole_pages": WHOLE_PAGES,
           "retrieval": timings[task.RETRIEVAL], "whole": timings[task.WHOLE],
           "retrieval_vs_whole": timings[task.RETRIEVAL]["first_answer_s"] / timings[task.WHOLE]["first_answer_s"]}
    print(f"    indexed {len(chunks)} chunks in {index_s:.1f} s ({row['chunks_per_s']:.1f} chunks/s)", flush=True)
    return row


@torch.no_grad()
def section_families(dtype: torch.dtype, new_tokens: int = 16, prompt_tokens: int = 32) -> list[dict]:
    """Greedy batch-1 decode of each family's real shape, one model in memory at a time: decode tokens/s (first
    token excluded), the prompt pass, and the weights' memory."""
    rows = []
    for name, (model_type, shape) in FAMILY_SHAPES.items():
        torch.manual_seed(0)
        config = AutoConfig.for_model(model_type, max_position_embeddings=4096, **shape)
        model = AutoModelForCausalLM.from_config(config, dtype=dtype).eval()
        ids = torch.randint(1000, 100000, (1, prompt_tokens))
        model.generate(ids, max_new_tokens=2, do_sample=False)  # warm-up (and DeltaNet's one-time kernel fallback notes)
        one = min(_timed(lambda: model.generate(ids, max_new_tokens=1, min_new_tokens=1, do_sample=False)) for _ in range(2))
        full = _timed(lambda: model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False))
        rows.append({"family": name, "precision": str(dtype).removeprefix("torch."), "weights_gib": precision.weight_bytes(model) / 2**30,
                     "prompt_pass_s": one, "tokens_per_s": (new_tokens - 1) / max(full - one, 1e-9)})
        print(f"    {name}: {rows[-1]['tokens_per_s']:.1f} tok/s", flush=True)
        del model
    return rows


def build_moe_model(folder: Path, cache: Path) -> Path:
    """A random-weight qwen3_5_moe text model of MOE_SHAPE with the real Qwen3.5/3.6 tokenizer; nothing downloaded."""
    if (folder / "tokenizer_config.json").exists():  # written last
        return folder
    torch.manual_seed(0)
    config = AutoConfig.for_model("qwen3_5_moe_text", max_position_embeddings=4096, **MOE_SHAPE)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.generation_config.eos_token_id = [MOE_SHAPE["eos_token_id"]]
    model.save_pretrained(folder)
    demo.load_tokenizer(builtin_families()["qwen3.6-moe"], cache).save_pretrained(folder)
    return folder


def gguf_moe_bytes(path: Path) -> tuple[int, int]:
    """(bytes a decode step reads, bytes of every weight) in a mixture of experts' GGUF file: of each expert tensor
    (`*_exps`) only the routed share (used / count); the shared expert and everything else whole; an untied input
    embedding is read one row at a time, so neither counts it."""
    from gguf import GGUFReader

    reader = GGUFReader(path)
    arch = str(bytes(reader.fields["general.architecture"].parts[-1]), "utf-8")
    used, count = (int(reader.fields[f"{arch}.expert_{k}"].parts[-1][0]) for k in ("used_count", "count"))
    sizes = {t.name: int(t.n_bytes) for t in reader.tensors}
    every = sum(sizes.values()) - (sizes.get("token_embd.weight", 0) if "output.weight" in sizes else 0)
    experts = sum(n for name, n in sizes.items() if "_exps" in name)
    return every - experts + experts * used // count, every


def section_moe(cache: Path, new_tokens: int, bandwidth: float) -> list[dict]:
    """Decode tokens/s of the MoE model on the llama.cpp engine (Q8_0 and Q4_K_M, converted once) against the limits."""
    from qwen_playground.backends import gguf_files
    from qwen_playground.backends.llamacpp import LlamaCppRunner
    from qwen_playground.core.registry import ModelSpec

    folder = build_moe_model(cache / "qwen3.6-moe-2-layers-random", cache)
    family = builtin_families()["qwen3.6-moe"]
    spec = ModelSpec(id="bench-moe", path=str(folder), family=family, params_b=2.7, active_params_b=0.6, context_length=4096)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True, tokenize=True,
                                           return_dict=False, enable_thinking=False)
    rows = []
    for choice in ("8-bit", "4-bit"):
        path = gguf_files.converted(spec, folder, precision.GGUF_TYPES[choice], cache)
        runner = LlamaCppRunner(path, 2048, slots=1)
        raw_llamacpp(runner, prompt, 4)
        result = max((raw_llamacpp(runner, prompt, new_tokens) for _ in range(2)), key=lambda r: r["tokens_per_s"])
        runner.close()
        active, every = gguf_moe_bytes(path)
        limit, dense_limit = bandwidth * 1e9 / active, bandwidth * 1e9 / every
        rows.append({"precision": f"llama.cpp {precision.GGUF_TYPES[choice]} ({choice})", "weights_gib": path.stat().st_size / 2**30,
                     "active_gb": active / 1e9, "every_gb": every / 1e9, "tokens_per_s": result["tokens_per_s"], "limit_tokens_per_s": limit,
                     "fraction_of_limit": result["tokens_per_s"] / limit, "dense_limit_tokens_per_s": dense_limit,
                     "vs_dense_limit": result["tokens_per_s"] / dense_limit, "bandwidth_gbs": bandwidth})
        print(f"    {rows[-1]['precision']}: {rows[-1]['tokens_per_s']:.1f} tok/s", flush=True)
    return rows


def read_bandwidth_gbs() -> float:
    """Streaming read bandwidth: the best of several sums over 1 GiB (larger than any cache), all threads."""
    buffer = torch.ones(2**28)  # 1 GiB of float32, touched
    best = min(_timed(buffer.sum) for _ in range(5))
    return buffer.nbytes / best / 1e9


def bytes_read_per_token(model: torch.nn.Module) -> int:
    """Weights a decode step reads: all of them, except an untied input embedding (one row of it is read)."""
    total = precision.weight_bytes(model)
    embed, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    if embed is not head:
        total -= precision.tensor_bytes(embed)
    return total


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def raw_generate(model, tokenizer, new_tokens: int) -> dict:
    """Batch-1 greedy decode through plain `generate` with a streamer: time to first token and tokens/s."""
    enc = tokenizer.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True, return_tensors="pt",
                                        return_dict=True).to(model.device)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True)
    out: dict = {}
    start = time.perf_counter()
    worker = threading.Thread(target=lambda: out.update(ids=model.generate(**enc, streamer=streamer, do_sample=False, max_new_tokens=new_tokens,
                                                                           min_new_tokens=new_tokens)))
    worker.start()
    first = None
    for chunk in streamer:
        if chunk and first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    worker.join()
    n = out["ids"].shape[1] - enc["input_ids"].shape[1]
    return {"ttft_s": first - start, "tokens_per_s": (n - 1) / (end - first), "tokens": n}


class Page:
    """Talks to the app as one open page (one session) does: join the queue with the event's inputs, then read the
    server-sent events (applying Gradio's streamed diffs). gradio_client costs ~70 ms of its own before the first output
    (measured here on a streaming echo endpoint with no model: 79 ms vs 8 ms this way), which would be charged to the
    app. A session's first event costs Gradio ~20 ms more (it copies the app's state for the session; a browser does
    that on opening the page): the first call warms it."""

    def __init__(self, url: str):
        import httpx

        self.url, self.http, self.session = url, httpx.Client(timeout=600), os.urandom(8).hex()
        config = self.http.get(url + "config").json()
        self.defaults = {c["id"]: c.get("props", {}).get("value") for c in config["components"]}
        self.events = {d["api_name"]: (i, d["inputs"]) for i, d in enumerate(config["dependencies"]) if d.get("api_name")}

    def stream(self, api_name: str, *args):
        """Each output state of the event as the page receives it (the inputs not given take their defaults)."""
        from gradio_client.utils import apply_diff

        index, inputs = self.events[api_name]
        session = self.session
        data = [*args, *(self.defaults[i] for i in inputs[len(args):])]
        self.http.post(self.url + "gradio_api/queue/join", json={"data": data, "fn_index": index, "session_hash": session,
                                                                  "event_data": None, "trigger_id": None}).raise_for_status()
        state = None
        with self.http.stream("GET", self.url + f"gradio_api/queue/data?session_hash={session}") as response:
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message["msg"] in ("process_generating", "process_completed"):
                    output = message.get("output", {})
                    if output.get("error"):
                        raise RuntimeError(output["error"])
                    data = output.get("data", [])
                    state = data if state is None or message["msg"] == "process_completed" else [apply_diff(o, d) for o, d in zip(state, data)]
                    yield state
                if message["msg"] == "process_completed":
                    return


class App:
    """The playground in-process, as a user would reach it: /chat as its page calls it, other endpoints through
    gradio_client."""

    def __init__(self, model_dir: Path | None, cache_dir: Path, dtype: str = "auto", engine: str = "transformers", endpoint: str | None = None):
        """`endpoint`: an OpenAI-compatible server's base URL, served as the model bench-remote."""
        from gradio_client import Client

        from qwen_playground.backends.router import Router
        from qwen_playground.core.config import load_config
        from qwen_playground.ui import build_demo

        config_path = cache_dir / "bench.yaml"
        models = []
        if model_dir:  # greedy, no repetition penalty: the settings a comparison with raw generate needs
            models.append({"id": "bench", "path": str(model_dir), "family": "qwen2.5", "params_b": 0.5, "context_length": 32768,
                           "presets": {"non_thinking": {"temperature": 0.0, "top_p": 1.0, "top_k": 0, "max_new_tokens": 64}}})
        endpoints = [{"id": "bench-server", "base_url": endpoint}] if endpoint else []
        if endpoint:
            models.append({"id": "bench-remote", "endpoint": "bench-server", "remote_model": "bench", "family": "qwen2.5", "params_b": 0.5,
                           "context_length": 32768, "presets": {"non_thinking": {"temperature": 0.0, "top_p": 1.0, "top_k": 0,
                                                                                 "max_new_tokens": 64}}})
        config_path.write_text(yaml.safe_dump({"endpoints": endpoints, "models": models,
                                               "routes": {"chat": {"default": models[0]["id"]}} if models else {}}))
        self.config = load_config(config_path, demo=True, cache_dir=cache_dir, dtype=dtype, concurrency=16, engine=engine)
        self.router = Router(self.config)
        self.demo = build_demo(self.config, self.router)
        _, url, _ = self.demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, ssr_mode=False)
        self.client = Client(url, verbose=False)
        self.url, self.pages = url, threading.local()  # each simulated user (thread) has a page of its own

    def chat(self, model: str, new_tokens: int, prompt: str = PROMPT, precision: str = "full") -> dict:
        """One /chat call, timed as its page sees it: time to first answer text, then tokens/s over the stream."""
        start, first, last, history = time.perf_counter(), None, None, []
        if not hasattr(self.pages, "page"):
            self.pages.page = Page(self.url)
        for history, *_ in self.pages.page.stream("chat", prompt, [], model, "", False, 0.0, 1.0, 0, 0.0, 1.0, 0.0, new_tokens, 0, precision):
            answer = [m for m in history[1:] if m["role"] == "assistant" and not m.get("metadata") and _text(m)]
            if answer:
                last = time.perf_counter()
                first = first or last
        footer = " ".join(str((m.get("metadata") or {}).get("title", "")) for m in history)
        n = int(re.search(r"(\d+) answer tokens", footer).group(1))
        return {"ttft_s": first - start, "tokens_per_s": (n - 1) / (last - first) if last > first else None, "tokens": n, "end": last}

    def close(self):
        self.demo.close()


def _text(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


def section_overhead(app: App, model, tokenizer, model_id: str, new_tokens: int, rounds: int = 3) -> dict:
    app.chat(model_id, 16)  # load and warm up
    raw_generate(model, tokenizer, 16)
    raws, apps = [], []
    for _ in range(rounds):  # interleaved, so a busy neighbour slows both alike
        raws.append(raw_generate(model, tokenizer, new_tokens))
        apps.append(app.chat(model_id, new_tokens))
    raw_tps = statistics.median(r["tokens_per_s"] for r in raws)
    app_tps = statistics.median(a["tokens_per_s"] for a in apps)
    raw_ttft = statistics.median(r["ttft_s"] for r in raws)
    app_ttft = statistics.median(a["ttft_s"] for a in apps)
    return {"raw_tokens_per_s": raw_tps, "app_tokens_per_s": app_tps, "speed_ratio": app_tps / raw_tps,
            "raw_ttft_ms": raw_ttft * 1e3, "app_ttft_ms": app_ttft * 1e3, "ttft_added_ms": (app_ttft - raw_ttft) * 1e3}


def raw_llamacpp(runner, prompt_ids: list[int], new_tokens: int) -> dict:
    """Batch-1 greedy decode straight through the llama.cpp engine (no app, no end-of-turn stop): time to first token and
    tokens/s."""

    class Clock:  # a streamer that only notes when each token came
        def __init__(self) -> None:
            self.times: list[float] = []

        def put(self, _token) -> None:
            self.times.append(time.perf_counter())

    clock, start = Clock(), time.perf_counter()
    runner.run(prompt_ids, SamplingParams(temperature=0, max_new_tokens=new_tokens), new_tokens, [], clock, ())
    first, end = clock.times[0], clock.times[-1]
    return {"ttft_s": first - start, "tokens_per_s": (new_tokens - 1) / (end - first), "tokens": new_tokens}


def gguf_bytes_read_per_token(path: Path) -> int:
    """Tensor bytes a decode step reads from a GGUF file: all of them, except an untied input embedding."""
    from gguf import GGUFReader

    sizes = {t.name: int(t.n_bytes) for t in GGUFReader(path).tensors}
    return sum(sizes.values()) - (sizes.get("token_embd.weight", 0) if "output.weight" in sizes else 0)


def section_llamacpp(folder: Path, tokenizer, new_tokens: int, bandwidth: float, cache: Path) -> list[dict]:
    """Batch-1 decode on the llama.cpp engine for each precision it offers, converted from the same weights."""
    from qwen_playground.backends import gguf_files
    from qwen_playground.backends.llamacpp import LlamaCppRunner
    from qwen_playground.core.registry import ModelSpec

    spec = ModelSpec(id=f"bench-{folder.name}", path=str(folder), family=QWEN25, params_b=0.5, context_length=32768)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True, tokenize=True, return_dict=False)
    rows = []
    for choice, gguf_type in precision.GGUF_TYPES.items():
        path = gguf_files.converted(spec, folder, gguf_type, cache)
        runner = LlamaCppRunner(path, 2048)
        raw_llamacpp(runner, prompt, 4)
        result = max((raw_llamacpp(runner, prompt, new_tokens) for _ in range(2)), key=lambda r: r["tokens_per_s"])
        limit = bandwidth * 1e9 / gguf_bytes_read_per_token(path)
        rows.append({"precision": f"llama.cpp {gguf_type} ({choice})", "weights_gib": path.stat().st_size / 2**30,
                     "tokens_per_s": result["tokens_per_s"], "limit_tokens_per_s": limit, "fraction_of_limit": result["tokens_per_s"] / limit})
        runner.close()
    return rows


def section_speculative(folder: Path, tokenizer, new_tokens: int, cache: Path, length: int = 4) -> dict:
    """Speculative decoding's bounds on the llama.cpp engine (the bench model, 8-bit), one run: greedy tokens/s without
    drafts; with guesses that always agree at no cost (the model's own greedy answer as the draft: the mechanism's
    ceiling, one pass per `length` + 1 tokens); with the model as its own draft (always agrees, at the draft's full
    cost); and with guesses that never agree (the first guess always wrong: the overhead floor). Each answer is
    checked to be the greedy one."""
    from qwen_playground.backends import gguf_files
    from qwen_playground.backends.llamacpp import LlamaCppRunner
    from qwen_playground.backends.speculative import PROMPT_LOOKUP, Speculation
    from qwen_playground.core.registry import ModelSpec

    class Oracle(Speculation):  # guesses from the known answer: each right, or the first of each pass wrong
        def __init__(self, answer: list[int], right: bool):
            super().__init__(PROMPT_LOOKUP, length)
            self.answer, self.right = answer, right

        def guesses(self, prompt: list[int], answer: list[int], room: int) -> list[int]:
            guess = self.answer[len(answer):len(answer) + self.wanted(room)]
            return guess if self.right else [(guess[0] + 1) % 1000, *guess[1:]] if guess else []

    spec = ModelSpec(id=f"bench-{folder.name}", path=str(folder), family=QWEN25, params_b=0.5, context_length=32768)
    path = gguf_files.converted(spec, folder, precision.GGUF_TYPES["8-bit"], cache)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True, tokenize=True, return_dict=False)
    runner = LlamaCppRunner(path, 2048, slots=1)
    greedy = SamplingParams(temperature=0, max_new_tokens=new_tokens)

    def timed(speculation: Speculation | None) -> tuple[float, list[int]]:
        start = time.perf_counter()
        ids = runner.run(prompt, greedy, new_tokens, [], type("Sink", (), {"put": lambda self, _: None})(), (), speculation=speculation)
        return new_tokens / (time.perf_counter() - start), ids

    try:
        timed(None)  # warm
        plain, answer = max(timed(None) for _ in range(2))
        rows = {"plain": plain}
        for name, make in (("ceiling", lambda: Oracle(answer, True)), ("self_draft", lambda: Speculation("self", length, drafter=path)),
                           ("floor", lambda: Oracle(answer, False))):
            speed, ids = max(timed(make()) for _ in range(2))
            assert ids == answer, f"{name}: drafts changed the greedy answer"
            rows[name] = speed
    finally:
        runner.close()
    return {"model": "llama.cpp Q8_0", "draft_length": length, "plain_tokens_per_s": rows["plain"],
            "ceiling_tokens_per_s": rows["ceiling"], "self_draft_tokens_per_s": rows["self_draft"], "floor_tokens_per_s": rows["floor"],
            "ceiling_ratio": rows["ceiling"] / rows["plain"], "self_draft_ratio": rows["self_draft"] / rows["plain"],
            "floor_ratio": rows["floor"] / rows["plain"]}


def app_default_speed(folder: Path, cache: Path, model_id: str, new_tokens: int) -> dict:
    """/chat's decode speed on the app as it starts on this machine (its engine, full precision), measured in a child
    process: this one has run torch on its main thread, whose idle OpenMP pool would slow llama.cpp (see llamacpp.apart)."""
    done = subprocess.run([sys.executable, __file__, "--app-default", str(folder), "--cache-dir", str(cache), "--tokens", str(new_tokens)],
                          capture_output=True, text=True, timeout=1200)
    if done.returncode != 0:
        raise RuntimeError(f"the app-default measurement failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _app_default(folder: Path, cache: Path, new_tokens: int) -> dict:
    app = App(folder, cache, engine="auto")  # the engine chosen for this machine
    try:
        local = app.router.local
        app.chat("bench", 16)  # converts (once) and loads
        best = max((app.chat("bench", new_tokens) for _ in range(2)), key=lambda r: r["tokens_per_s"])
        return {"engine": local.engine_for(local.registry.get("bench")).name, "tokens_per_s": best["tokens_per_s"]}
    finally:
        app.close()


def section_decode(folder: Path, tokenizer, device: str, new_tokens: int, app: App | None, model_id: str, cache: Path) -> list[dict]:
    """Batch-1 decode speed against the bandwidth limit, for each engine and precision this device offers, and the
    app's own default path (through /chat) against the transformers path it had before llama.cpp."""
    bandwidth = read_bandwidth_gbs() if device == "cpu" else _gpu_bandwidth_gbs()
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        for quant in PRECISIONS:
            if precision.unavailable_reason(quant, device) or (quant != "full" and dtype == torch.float32):
                continue
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, device_map=device,
                                                         quantization_config=precision.transformers_config(quant, device, dtype)).eval()
            raw_generate(model, tokenizer, 4)
            result = max((raw_generate(model, tokenizer, new_tokens) for _ in range(2)), key=lambda r: r["tokens_per_s"])
            per_token = bytes_read_per_token(model)
            limit = bandwidth * 1e9 / per_token
            rows.append({"precision": f"{str(dtype).removeprefix('torch.')}{'' if quant == 'full' else ' ' + quant}",
                         "weights_gib": precision.weight_bytes(model) / 2**30, "tokens_per_s": result["tokens_per_s"],
                         "limit_tokens_per_s": limit, "fraction_of_limit": result["tokens_per_s"] / limit})
            del model
    if device == "cpu":
        rows += section_llamacpp(folder, tokenizer, new_tokens, bandwidth, cache)
    if app is not None:  # the transformers path through /chat: its dtype, through the continuous batch
        app_result = max((app.chat(model_id, new_tokens) for _ in range(2)), key=lambda r: r["tokens_per_s"])
        dtype = str(app.router.local.dtype).removeprefix("torch.")
        limit = next(r for r in rows if r["precision"] == dtype)["limit_tokens_per_s"]
        rows.append({"precision": f"/chat on transformers ({dtype}, batched)", "weights_gib": None,
                     "tokens_per_s": app_result["tokens_per_s"], "limit_tokens_per_s": limit,
                     "fraction_of_limit": app_result["tokens_per_s"] / limit})
        default = app_default_speed(folder, cache, model_id, new_tokens)  # in a fresh process, as a user starts it
        if default["engine"] != "transformers":
            limit = next(r for r in rows if r["precision"].startswith(f"{default['engine']} ") and "(full)" in r["precision"])["limit_tokens_per_s"]
            rows.append({"precision": f"app default (/chat, {default['engine']}, full)", "weights_gib": None,
                         "tokens_per_s": default["tokens_per_s"], "limit_tokens_per_s": limit, "fraction_of_limit": default["tokens_per_s"] / limit,
                         "vs_transformers_app": default["tokens_per_s"] / app_result["tokens_per_s"]})
    return [dict(r, bandwidth_gbs=bandwidth) for r in rows]


def _gpu_bandwidth_gbs() -> float:
    buffer = torch.ones(2**30, device="cuda")  # 4 GiB
    buffer.sum()
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(10):
        start = time.perf_counter()
        buffer.sum()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return buffer.nbytes / best / 1e9


@torch.no_grad()
def section_precision(folder: Path, app: App, answer_sample: int = 32) -> dict:
    """The transformers dtype the app chose on this CPU against both dtypes timed end to end on the bench model: a
    typical turn (cpu_dtype.TYPICAL_PROMPT tokens in, TYPICAL_ANSWER out), the prompt pass timed whole and the answer
    from `answer_sample` greedy steps (decode speed is flat over an answer this short)."""
    from qwen_playground.backends.cpu_dtype import TYPICAL_ANSWER, TYPICAL_PROMPT

    ids = torch.randint(1000, 100000, (1, TYPICAL_PROMPT))
    seconds = {}
    for dtype in (torch.float32, torch.bfloat16):
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).eval()
        model.generate(ids[:, :16], max_new_tokens=2, do_sample=False)  # warm-up
        prompt_s = min(_timed(lambda: model.generate(ids, max_new_tokens=1, min_new_tokens=1, do_sample=False)) for _ in range(2))
        whole_s = _timed(lambda: model.generate(ids, max_new_tokens=answer_sample, min_new_tokens=answer_sample, do_sample=False))
        seconds[str(dtype).removeprefix("torch.")] = prompt_s + TYPICAL_ANSWER * (whole_s - prompt_s) / (answer_sample - 1)
        del model
    local = app.router.local
    chosen = str(local.dtype).removeprefix("torch.")
    return {"seconds": seconds, "chosen": chosen, "fastest": min(seconds, key=seconds.get), "reason": local.dtype_reason,
            "prompt_tokens": TYPICAL_PROMPT, "answer_tokens": TYPICAL_ANSWER}


def section_concurrency(app: App, model_id: str, new_tokens: int, users=(1, 2, 4, 8), precision: str = "full") -> list[dict]:
    return _users_at_once(lambda i: app.chat(model_id, new_tokens, f"{PROMPT} ({i})", precision), users)


def llamacpp_concurrency(folder: Path, cache: Path, new_tokens: int) -> list[dict]:
    """(3) on the llama.cpp engine through /chat, in a child process (this one's torch OpenMP pool would slow llama.cpp)."""
    done = subprocess.run([sys.executable, __file__, "--app-concurrency", str(folder), "--cache-dir", str(cache), "--tokens", str(new_tokens)],
                          capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"the llama.cpp concurrency measurement failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _app_concurrency(folder: Path, cache: Path, new_tokens: int) -> list[dict]:
    app = App(folder, cache, engine="llama.cpp")
    try:
        app.chat("bench", 16, precision=LLAMA_CPP_PRECISION)  # converts (once) and loads
        return section_concurrency(app, "bench", new_tokens, users=LLAMA_CPP_USERS, precision=LLAMA_CPP_PRECISION)
    finally:
        app.close()


def llama_server_concurrency(binary: Path, folder: Path, cache: Path, new_tokens: int) -> tuple[list[dict], list[dict]]:
    """The same users against llama.cpp's own `llama-server` (built by hand from llama-cpp-python's vendored source) on
    the GGUF file the app made: 8 parallel slots. Asked directly (the prompt as the app's token ids, `ignore_eos`), then
    through the app's /chat as an OpenAI-compatible endpoint: (direct rows, rows through the app)."""
    import httpx

    from qwen_playground.backends import gguf_files, llamacpp
    from qwen_playground.core.registry import ModelSpec

    spec = ModelSpec(id="bench", path=str(folder), family=QWEN25, params_b=0.5, context_length=32768)
    gguf = gguf_files.converted(spec, folder, precision.GGUF_TYPES[LLAMA_CPP_PRECISION], cache)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    port = _free_port()
    command = [str(binary), "-m", str(gguf), "-np", "8", "-t", str(llamacpp.threads()), "-c", "16384", "--port", str(port)]
    server = subprocess.Popen(command + (["--no-repack"] if llamacpp.repacking_crashes() else []), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)

        def user(i: int) -> dict:
            ids = tokenizer.apply_chat_template([{"role": "user", "content": f"{PROMPT} ({i})"}], add_generation_prompt=True,
                                                tokenize=True, return_dict=False)
            body = {"prompt": ids, "n_predict": new_tokens, "ignore_eos": True, "temperature": 0, "stream": True, "cache_prompt": False}
            start, first, tokens = time.perf_counter(), None, 0
            with httpx.stream("POST", url + "/completion", json=body, timeout=600) as response:
                for line in response.iter_lines():
                    if line.startswith("data: ") and not json.loads(line[6:]).get("stop"):
                        tokens += 1
                        first = first or time.perf_counter()
            return {"ttft_s": first - start, "tokens": tokens, "end": time.perf_counter()}

        user(0)  # warm
        direct = _users_at_once(user, LLAMA_CPP_USERS)
        app = App(None, cache, endpoint=url + "/v1")  # the same server as the app's endpoint: the deployment it would be
        try:
            app.chat("bench-remote", 16)
            through_app = section_concurrency(app, "bench-remote", new_tokens, users=LLAMA_CPP_USERS)
        finally:
            app.close()
        return direct, through_app
    finally:
        server.terminate()
        server.wait(timeout=30)


def _users_at_once(user, users) -> list[dict]:
    """Each count of users calling `user(i)` at once: aggregate tokens/s and p95 first token."""
    rows = []
    for n in users:
        results: list[dict] = [None] * n
        start = time.perf_counter()
        threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, user(i))) for i in range(n)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        wall = max(r["end"] for r in results) - start
        ttfts = sorted(r["ttft_s"] for r in results)
        rows.append({"users": n, "aggregate_tokens_per_s": sum(r["tokens"] for r in results) / wall,
                     "p95_ttft_s": ttfts[max(0, -(-95 * n // 100) - 1)]})
    base = rows[0]["aggregate_tokens_per_s"]
    return [dict(r, vs_one_user=r["aggregate_tokens_per_s"] / base) for r in rows]


def section_batch(app: App, model_id: str, new_tokens: int, cache: Path, prompts: int = 16) -> dict:
    """The Batch tab's /batch (rows in flight together in the continuous batch) vs the same prompts as /chat calls one
    after another, both through gradio_client, greedy to the same number of new tokens."""
    from gradio_client import handle_file

    questions = [f"{PROMPT} ({i})" for i in range(prompts)]
    path = cache / "batch-prompts.csv"
    path.write_text("prompt\n" + "".join(f'"{q}"\n' for q in questions))
    start = time.perf_counter()
    *_, report = app.client.predict(handle_file(str(path)), None, [model_id], "chat", "full", new_tokens, api_name="/batch")
    batch_s = time.perf_counter() - start
    start = time.perf_counter()
    singles = [app.chat(model_id, new_tokens, q) for q in questions]
    one_by_one_s = time.perf_counter() - start
    tokens = sum(r["answer_tokens"] for r in report["results"])
    return {"prompts": prompts, "batch_s": batch_s, "one_by_one_s": one_by_one_s, "ratio": one_by_one_s / batch_s,
            "batch_tokens": tokens, "one_by_one_tokens": sum(r["tokens"] for r in singles)}


def section_alternatives(app: App, model_id: str, new_tokens: int, rounds: int = 5) -> dict:
    """Token alternatives cost only the requests that ask for them: decode tokens/s through the continuous batch of
    (a) a request without them, as shipped, (b) the same on an engine built without the recorder, (c) one that asks,
    interleaved, medians. Engine-level (no Gradio), so only the recorder differs."""
    from qwen_playground.backends import batching
    from qwen_playground.backends.local import LocalBackend
    from qwen_playground.core.generation import Metrics, Request

    def without_recorder(manager, alternatives):  # the batch's processors as they were before the recorder
        manager = shipped(manager, alternatives)
        manager.logit_processor.logits_processor.remove(alternatives)
        manager.logit_processor.tensors_required -= 1
        return manager

    shipped, settings = batching._with_our_processors, app.config.settings
    bare = LocalBackend(app.config.registry, settings)
    batching._with_our_processors = without_recorder
    try:
        speed = lambda backend, k: next(e for e in backend.stream(Request(model_id, messages, sampling, alternatives=k), threading.Event())
                                        if isinstance(e, Metrics)).tokens_per_s
        messages, sampling = [{"role": "user", "content": PROMPT}], app.config.registry.get(model_id).preset(False).model_copy(
            update={"max_new_tokens": new_tokens})
        speed(bare, 0)  # loads the bare engine's model while the patch holds
    finally:
        batching._with_our_processors = shipped
    local = app.router.local
    speed(local, 0)
    runs: dict[str, list[float]] = {"shipped": [], "bare": [], "asking": []}
    for _ in range(rounds):
        runs["shipped"].append(speed(local, 0))
        runs["bare"].append(speed(bare, 0))
        runs["asking"].append(speed(local, 5))
    medians = {k: statistics.median(v) for k, v in runs.items()}
    return {"without_tokens_per_s": medians["shipped"], "no_recorder_tokens_per_s": medians["bare"], "asking_tokens_per_s": medians["asking"],
            "ratio_without": medians["shipped"] / medians["bare"], "ratio_asking": medians["asking"] / medians["shipped"]}


def section_compare(app: App, new_tokens: int) -> dict:
    panes = ["demo-qwen3", "demo-qwen2.5", "demo-qwen3"]
    kwargs = {"prompt": PROMPT, "panes": [{"model": m, "temperature": 0.7, "max_new_tokens": new_tokens} for m in panes]}
    app.client.predict(**kwargs, api_name="/compare")  # warm: models loaded
    singles = []
    for model in panes:
        start = time.perf_counter()
        app.client.predict("Hi " + PROMPT, [], model, "", False, 0.7, 0.8, 20, 0.0, 1.0, 0.0, new_tokens, api_name="/chat")
        singles.append(time.perf_counter() - start)
    start = time.perf_counter()
    app.client.predict(**kwargs, api_name="/compare")
    wall = time.perf_counter() - start
    return {"three_pane_s": wall, "slowest_pane_s": max(singles), "ratio": wall / max(singles)}


def section_cold_start() -> dict:
    """The app started twice on an empty cache folder: the first start is a fresh machine's (demo models not built,
    nothing converted), the second a returning user's. Each: first page, then the first answer to Chat."""
    with tempfile.TemporaryDirectory(prefix="qwen-playground-cold-") as cache:
        fresh, warm = _start_and_ask(Path(cache)), _start_and_ask(Path(cache))
    return {"first_page_s": fresh["page_s"], "first_answer_s": fresh["answer_s"], "answered_on": fresh["metrics"],
            "warm_page_s": warm["page_s"], "warm_answer_s": warm["answer_s"]}


def _start_and_ask(cache_dir: Path) -> dict:
    port = _free_port()
    start = time.perf_counter()
    env = dict(os.environ, QWEN_PLAYGROUND_CONFIG="")
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--demo", "--port", str(port), "--cache-dir", str(cache_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError("app.py exited during cold start") from None
                time.sleep(0.1)
        page_s = time.perf_counter() - start
        from gradio_client import Client

        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        answer_start = time.perf_counter()
        history, _ = client.predict("Hello", api_name="/chat")
        metrics = next((m["metadata"]["title"] for m in reversed(history) if (m.get("metadata") or {}).get("title", "").startswith("📊")), "")
        return {"page_s": page_s, "answer_s": time.perf_counter() - answer_start, "metrics": metrics}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def print_table(run: dict, previous: list[dict]) -> None:
    def fmt(value, spec=".2f"):
        return "—" if value is None else format(value, spec)

    print(f"\n== Qwen Playground benchmarks · {run['when']} · {run['machine']} · model {run['model']} ==")
    if o := run.get("overhead"):
        print("\n(1) App overhead (/chat as its page calls it vs raw generate, batch 1, greedy)")
        print(f"    tokens/s: raw {fmt(o['raw_tokens_per_s'], '.1f')}, app {fmt(o['app_tokens_per_s'], '.1f')} -> ratio {o['speed_ratio']:.3f} (target >= 0.97)")
        print(f"    first token: raw {o['raw_ttft_ms']:.0f} ms, app {o['app_ttft_ms']:.0f} ms -> added {o['ttft_added_ms']:.0f} ms (target <= 30)")
    if rows := run.get("decode"):
        print(f"\n(2) Decode at batch 1 vs memory-bandwidth limit (read bandwidth {rows[0]['bandwidth_gbs']:.1f} GB/s)")
        print(f"    {'engine, precision':<44}{'weights GiB':>12}{'tok/s':>8}{'limit':>8}{'of limit':>10}")
        for r in rows:
            print(f"    {r['precision']:<44}{fmt(r['weights_gib']):>12}{r['tokens_per_s']:>8.1f}{r['limit_tokens_per_s']:>8.1f}{r['fraction_of_limit']:>10.0%}")
        for r in rows:
            if "vs_transformers_app" in r:
                print(f"    the app's default path: {r['fraction_of_limit']:.0%} of the limit (target >= 70%), "
                      f"{r['vs_transformers_app']:.2f}x the transformers path (target >= 3x)")
    engines = [("transformers batch, /chat", run.get("concurrency")), ("llama.cpp Q8_0, /chat", run.get("concurrency_llamacpp")),
               ("llama-server Q8_0 -np 8, direct", run.get("concurrency_llama_server")),
               ("llama-server Q8_0 -np 8 as endpoint, /chat", run.get("concurrency_llama_server_app"))]
    if any(rows for _, rows in engines):
        print("\n(3) Simultaneous users on one model (continuous batching)")
        print(f"    {'engine':<44}{'users':>5}{'aggregate tok/s':>17}{'vs 1 user':>11}{'p95 first token s':>19}{'vs alone':>10}")
        for name, rows in engines:
            for r in rows or []:
                print(f"    {name:<44}{r['users']:>5}{r['aggregate_tokens_per_s']:>17.1f}{r['vs_one_user']:>10.2f}x{r['p95_ttft_s']:>19.2f}"
                      f"{r['p95_ttft_s'] / rows[0]['p95_ttft_s']:>9.1f}x")
        if eight := next((r for r in run.get("concurrency", []) if r["users"] == 8), None):
            print(f"    transformers, 8 users: {eight['vs_one_user']:.2f}x one user's tokens/s (target >= 3.5x)")
        if eight := next((r for r in run.get("concurrency_llamacpp", []) if r["users"] == 8), None):
            alone = run["concurrency_llamacpp"][0]["p95_ttft_s"]
            print(f"    llama.cpp, 8 users: {eight['aggregate_tokens_per_s']:.1f} tok/s in aggregate (target >= 100 on the 0.5B model); "
                  f"p95 first token {eight['p95_ttft_s']:.2f} s vs {alone:.2f} s alone -> {eight['p95_ttft_s'] / alone:.1f}x (target <= 2x)")
    if c := run.get("compare"):
        print(f"\n(4) Compare: 3 panes {c['three_pane_s']:.2f} s vs slowest single pane {c['slowest_pane_s']:.2f} s -> {c['ratio']:.2f}x "
              "(target <= 1.2x)")
    if b := run.get("batch"):
        print(f"\n(7) Batch: {b['prompts']} prompts via /batch {b['batch_s']:.1f} s ({b['batch_tokens']} tokens) vs one by one via /chat "
              f"{b['one_by_one_s']:.1f} s ({b['one_by_one_tokens']} tokens) -> {b['ratio']:.2f}x (target >= 3x for 16 prompts)")
    if a := run.get("alternatives"):
        print(f"\n(8) Why this token?: a request without alternatives {a['without_tokens_per_s']:.1f} tok/s vs an engine without the recorder "
              f"{a['no_recorder_tokens_per_s']:.1f} -> {a['ratio_without']:.3f} (target >= 0.97: not slower); a request asking for the top 5 "
              f"{a['asking_tokens_per_s']:.1f} tok/s -> {a['ratio_asking']:.2f}x")
    if c := run.get("cold_start"):
        print(f"\n(5) Cold start on an empty cache folder: first page {c['first_page_s']:.1f} s (target <= 3 s); first answer "
              f"{c['first_answer_s']:.1f} s (target <= 8 s; the demo model built while the page starts; {c.get('answered_on', '')}); "
              f"started again on that cache: page {c.get('warm_page_s', 0):.1f} s, answer {c.get('warm_answer_s', 0):.1f} s")
    if p := run.get("precision"):
        figures = ", ".join(f"{name} {sec:.1f} s" for name, sec in p["seconds"].items())
        print(f"\n(9) transformers precision on this CPU, a {p['prompt_tokens']}-token prompt + {p['answer_tokens']}-token answer on the bench "
              f"model: {figures}; the app chose {p['chosen']} ({p['reason'] or 'set by hand'}) -> "
              f"{'the faster' if p['chosen'] == p['fastest'] else 'NOT the faster'} (target: the faster end to end)")
    if rows := run.get("families"):
        print(f"\n(6) One decode per family at real shapes (random weights, {rows[0]['precision']}, batch 1, greedy)")
        print(f"    {'model':<16}{'weights GiB':>12}{'prompt pass s':>15}{'decode tok/s':>14}{'vs first':>10}")
        for r in rows:
            print(f"    {r['family']:<16}{r['weights_gib']:>12.2f}{r['prompt_pass_s']:>15.2f}{r['tokens_per_s']:>14.1f}"
                  f"{r['tokens_per_s'] / rows[0]['tokens_per_s']:>9.2f}x")
    if rows := run.get("transcription"):
        print(f"\n(10) Speech to text on Qwen3-ASR-0.6B's shape (random weights, {rows[0]['precision']}, "
              f"{rows[0]['weights_gib']:.2f} GiB): audio encoder + a transcript of {TRANSCRIPT_TOKENS_PER_S} tokens a second, greedy")
        for r in rows:
            print(f"    {r['seconds']:>3} s clip ({r['audio_tokens']} audio tokens, {r['new_tokens']} new): {r['compute_s']:.2f} s, of which "
                  f"the encoder and prompt pass {r['prompt_pass_s']:.2f} s -> real-time factor {r['rtf']:.2f} (target <= 0.5)")
    if d := run.get("documents"):
        r, w = d["retrieval"], d["whole"]
        print(f"\n(11) Documents on Qwen3-Embedding-0.6B's shape (random weights, {d['dtype']}): a {d['pages']}-page text in {d['chunks']} "
              f"chunks of {d['chunk_tokens']} tokens indexed in {d['index_s']:.1f} s ({d['chunks_per_s']:.1f} chunks/s); on a "
              f"{d['whole_pages']}-page text, time to the first answer token: retrieval {r['first_answer_s']:.2f} s "
              f"({r['prompt_tokens']} prompt tokens, vectors cached) vs the whole document {w['first_answer_s']:.2f} s "
              f"({w['prompt_tokens']} tokens) -> {d['retrieval_vs_whole']:.2f}x")
    if sp := run.get("speculative"):
        print(f"\n(13) Speculative decoding on the llama.cpp engine ({sp['model']}, draft length {sp['draft_length']}, greedy, the same "
              f"answer each way): plain {sp['plain_tokens_per_s']:.1f} tok/s; guesses always right at no cost "
              f"{sp['ceiling_tokens_per_s']:.1f} -> {sp['ceiling_ratio']:.2f}x (ceiling, target >= 2x); the model as its own draft "
              f"{sp['self_draft_tokens_per_s']:.1f} -> {sp['self_draft_ratio']:.2f}x (always right, at a draft as slow as the model); "
              f"guesses always wrong {sp['floor_tokens_per_s']:.1f} -> {sp['floor_ratio']:.2f}x (floor, target >= 0.85x)")
    if rows := run.get("moe"):
        print(f"\n(12) A mixture of experts shaped like Qwen3.6-35B-A3B, 2 layers (256 experts, 8 routed + 1 shared a token), llama.cpp, "
              f"batch 1 (read bandwidth {rows[0]['bandwidth_gbs']:.1f} GB/s)")
        print(f"    {'precision':<30}{'weights GiB':>12}{'read/token GB':>15}{'tok/s':>8}{'limit':>8}{'of limit':>10}{'every-weight limit':>20}")
        for r in rows:
            print(f"    {r['precision']:<30}{r['weights_gib']:>12.2f}{r['active_gb']:>15.2f}{r['tokens_per_s']:>8.1f}{r['limit_tokens_per_s']:>8.1f}"
                  f"{r['fraction_of_limit']:>10.0%}{r['dense_limit_tokens_per_s']:>13.1f} ({r['vs_dense_limit']:.1f}x)")
    if previous:
        print("\nTrend (earlier runs, newest last):")
        print(f"    {'when':<20}{'model':<8}{'app/raw':>8}{'+TTFT ms':>9}{'default of limit':>17}{'8 users vs 1':>13}{'page s':>8}")
        for r in [*previous[-5:], run]:
            default = next((d for d in r.get("decode", []) if d["precision"].startswith("app default")), None)
            eight = next((c for c in r.get("concurrency", []) if c["users"] == 8), None)
            print(f"    {r['when']:<20}{r['model']:<8}{fmt((r.get('overhead') or {}).get('speed_ratio'), '.3f'):>8}"
                  f"{fmt((r.get('overhead') or {}).get('ttft_added_ms'), '.0f'):>9}{fmt(default and default['fraction_of_limit'], '.0%'):>17}"
                  f"{fmt(eight and eight['vs_one_user'], '.2f'):>13}{fmt((r.get('cold_start') or {}).get('first_page_s'), '.1f'):>8}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny models only, fewer tokens")
    parser.add_argument("--size", choices=list(SIZES), default="0.5b")
    parser.add_argument("--tokens", type=int, help="new tokens per answer (default 48, quick 24)")
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "qwen-playground-bench")
    parser.add_argument("--no-save", action="store_true", help="do not append to bench/results.jsonl")
    parser.add_argument("--skip", nargs="*", default=[], choices=["overhead", "decode", "concurrency", "compare", "cold_start", "families", "batch",
                                                                        "alternatives", "precision", "transcription", "documents", "moe",
                                                                        "speculative"])
    parser.add_argument("--llama-server", type=Path, help="a llama-server binary: (3) measures it beside the app's engines")
    parser.add_argument("--app-default", type=Path, help=argparse.SUPPRESS)  # (2)'s child process: /chat on the app as it starts
    parser.add_argument("--app-concurrency", type=Path, help=argparse.SUPPRESS)  # (3)'s child process: users on llama.cpp
    args = parser.parse_args(argv)
    tokens = args.tokens or (24 if args.quick else 48)
    if args.app_default:
        print(json.dumps(_app_default(args.app_default, args.cache_dir, tokens)))
        return {}
    if args.app_concurrency:
        print(json.dumps(_app_concurrency(args.app_concurrency, args.cache_dir, tokens)))
        return {}
    cache = args.cache_dir
    cache.mkdir(parents=True, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.quick:
        folder = cache / "tiny-random"
        if not (folder / "config.json").exists():
            demo.build(QWEN25, folder, scripted=False)
    else:
        folder = build_sized_model(args.size, cache / f"qwen2.5-{args.size}-random")
    run = {"when": time.strftime("%Y-%m-%d %H:%M"), "model": "tiny" if args.quick else args.size, "tokens": tokens,
           "machine": f"{platform.machine()} {os.cpu_count()} cores, {device}" + (f" {torch.cuda.get_device_name()}" if device == "cuda" else "")}
    app = App(folder, cache, engine="transformers")  # sections (1), (3), (4), (7), (8) measure the transformers engine
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        dtype = app.router.local.dtype
        if "overhead" not in args.skip:
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, device_map=device).eval()
            run["overhead"] = section_overhead(app, model, tokenizer, "bench", tokens)
            del model
        if "decode" not in args.skip:
            run["decode"] = section_decode(folder, tokenizer, device, tokens, app, "bench", cache)
        if "concurrency" not in args.skip:
            run["concurrency"] = section_concurrency(app, "bench", tokens)
            if device == "cpu":
                run["concurrency_llamacpp"] = llamacpp_concurrency(folder, cache, tokens)
                if args.llama_server:
                    run["concurrency_llama_server"], run["concurrency_llama_server_app"] = llama_server_concurrency(
                        args.llama_server, folder, cache, tokens)
        if "compare" not in args.skip:
            run["compare"] = section_compare(app, tokens)
        if "batch" not in args.skip:
            run["batch"] = section_batch(app, "bench", tokens, cache)
        if "alternatives" not in args.skip:
            run["alternatives"] = section_alternatives(app, "bench", tokens)
        if "precision" not in args.skip and device == "cpu":
            run["precision"] = section_precision(folder, app)
        if "families" not in args.skip and not args.quick:
            run["families"] = section_families(dtype)
        if "transcription" not in args.skip:
            run["transcription"] = section_transcription(dtype, cache)
        if "documents" not in args.skip and not args.quick:
            run["documents"] = section_documents(app, folder, cache)
        if "moe" not in args.skip and not args.quick and device == "cpu":
            run["moe"] = section_moe(cache, tokens, read_bandwidth_gbs())
        if "speculative" not in args.skip and device == "cpu":
            run["speculative"] = section_speculative(folder, tokenizer, tokens, cache)
    finally:
        app.close()
    if "cold_start" not in args.skip:
        run["cold_start"] = section_cold_start()
    previous = [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()] if RESULTS.exists() else []
    print_table(run, previous)
    if not args.no_save:
        with RESULTS.open("a") as f:
            f.write(json.dumps(run) + "\n")
    return run


if __name__ == "__main__":
    main()
