"""The Fine-tune task: teach a small model something with LoRA, watch the loss fall, then ask base and tuned.

Data: JSONL or CSV of `instruction` / `output` pairs (optional `input`,
`system`), or JSONL lines holding a chat `messages` list (the last message the
assistant's), or a shipped example set (`prompts/finetune/`). Training follows
Qwen's guide: peft LoRA (r 16, alpha 32, dropout 0.1 on the q/k/v/o
projections) with trl's SFTTrainer, the model's own chat template, and the loss
on the assistant's tokens only (prompt-completion data). It runs in a worker
process (`python -m qwen_playground.tasks.finetune`, which calls `train` here),
so the app serves on and a crash cannot take it down; `Trainings` allows one at
a time per server. The adapter is saved with its card under
`<cache_dir>/adapters/` only when training ends well, and joins the registry
beside its base at once (`core/adapters.py`).
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import psutil
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..backends import download
from ..core import adapters, availability
from ..core.config import AppConfig
from ..core.devices import pick_device
from ..core.prompts import PROMPTS_DIR
from ..core.registry import ModelSpec
from ..service.lengths import PER_MESSAGE_OVERHEAD, count_tokens
from . import TaskError, resolve
from .datafile import read_records, shipped_sets, source

EXAMPLES_DIR = PROMPTS_DIR / "finetune"
FIELDS = ("instruction", "input", "output", "system", "messages")
ROLES = ("system", "user", "assistant")
NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$"  # an adapter name: letters, digits, - and _


@dataclass(frozen=True)
class Example:
    messages: tuple[dict, ...]  # the conversation; the last message is the assistant's answer to learn
    line: int = 0
HEARTBEAT_S = 1.0  # how often the page hears from a training that has not reported a step yet


def _example(values: dict, line: int, name: str) -> Example:
    where = f"{name}: line {line}"
    if "messages" in values:
        messages = values["messages"]
        if not isinstance(messages, list) or not all(isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str)
                                                      for m in messages):
            raise TaskError(f"{where}: 'messages' must be a list of {{role: system|user|assistant, content: text}}.", "file")
        if len(messages) < 2 or messages[-1]["role"] != "assistant" or not any(m["role"] == "user" for m in messages):
            raise TaskError(f"{where}: the messages need a user turn and must end with the assistant's answer.", "file")
        return Example(tuple({"role": m["role"], "content": m["content"]} for m in messages), line)
    instruction, output = values.get("instruction"), values.get("output")
    for key, value in (("instruction", instruction), ("output", output)):
        if not isinstance(value, str) or not value.strip():
            raise TaskError(f"{where}: no {key}. Each row needs an 'instruction' and an 'output' (or a 'messages' list).", "file")
    user = instruction.strip() + (f"\n\n{values['input'].strip()}" if isinstance(values.get("input"), str) and values["input"].strip() else "")
    system = [{"role": "system", "content": values["system"].strip()}] if isinstance(values.get("system"), str) and values["system"].strip() else []
    return Example((*system, {"role": "user", "content": user}, {"role": "assistant", "content": output.strip()}), line)


def parse(data: bytes, name: str) -> list[Example]:
    """Training examples from a CSV (instruction, output columns) or JSONL file; TaskError names the line."""
    return [_example(r.values, r.line, name) for r in read_records(data, name, FIELDS, ("instruction", "output"))]


@dataclass(frozen=True)
class ExampleSet:
    name: str
    file: str
    description: str


def example_sets() -> dict[str, ExampleSet]:
    return {name: ExampleSet(name, **entry) for name, entry in shipped_sets(EXAMPLES_DIR).items()}


def tokens_of(example: Example) -> int:
    """About how long an example is once templated (the real Qwen tokenizer, plus each turn's markers)."""
    return sum(count_tokens(m["content"]) + PER_MESSAGE_OVERHEAD for m in example.messages)


def load_examples(config: AppConfig, file: str | Path | None, example_set: str | None, max_length: int) -> list[Example]:
    """An upload's examples, or else a shipped set's, within the row limit and each within `max_length` tokens."""
    examples = parse(*source(file, example_set, EXAMPLES_DIR, "a JSONL or CSV file of examples"))
    if len(examples) > config.settings.max_finetune_rows:
        raise TaskError(f"{len(examples)} examples; a training run takes at most {config.settings.max_finetune_rows:,}.", "file")
    for example in examples:
        if (n := tokens_of(example)) > max_length:
            raise TaskError(f"Line {example.line}: this example is about {n:,} tokens; max length is {max_length:,}. "
                            "Shorten it or raise the max length.", "file")
    return examples


class TrainingPlan(BaseModel):
    """How to train: the guide's LoRA defaults, the optimiser's rate, how long, how long an example may be."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME)  # the adapter's name: the tuned model is '<base>+<name>'
    rank: int = Field(16, ge=1, le=256)
    alpha: int = Field(32, ge=1, le=512)
    dropout: float = Field(0.1, ge=0, le=0.5)
    targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    learning_rate: float = Field(2e-4, gt=0, le=0.1)
    epochs: int = Field(3, ge=1, le=100)
    max_steps: int = Field(0, ge=0, le=100_000)  # 0: as many as the epochs take
    max_length: int = Field(512, ge=16, le=32768)
    batch_size: int = Field(8, ge=1, le=64)
    qlora: bool = False  # the base in 4-bit (bitsandbytes NF4, CUDA only)


@dataclass(frozen=True)
class FinetuneJob:
    base: ModelSpec
    examples: list[Example]
    plan: TrainingPlan
    device: str

    @property
    def model_id(self) -> str:
        return f"{self.base.id}+{self.plan.name}"

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps([e.messages for e in self.examples]).encode()).hexdigest()[:16]


def trainable(spec: ModelSpec) -> bool:
    """Local models that write text and are not themselves fine-tuned: what a LoRA can be trained on here (a natively
    multimodal Qwen3.5 trains as its text side; the vision specialists do not)."""
    return not (spec.endpoint or spec.family.specialty == "vision" or spec.adapter)


def bases(registry) -> list[ModelSpec]:
    """The models a LoRA can be trained on here now: trainable, with weights on disk, buildable (demo) or downloadable."""
    return [spec for spec in registry.models.values() if trainable(spec) and availability.available(spec)]


def training_bytes(spec: ModelSpec, device: str, qlora: bool) -> int:
    """Memory a run needs, roughly: the base's weights (float32 on a CPU, bf16 or 4-bit on CUDA), plus half again for
    activations, the LoRA's gradients and its optimiser state."""
    per_param = 0.53 if qlora else 4 if device == "cpu" else 2
    return int(spec.params_b * 1e9 * per_param * 1.5)


def available_bytes(device: str) -> int:
    if device == "cuda":
        import torch

        return torch.cuda.mem_get_info()[0]
    return psutil.virtual_memory().available


def prepare(config: AppConfig, file: str | Path | None, example_set: str | None, base: str, plan: dict, user: str = "") -> FinetuneJob:
    """The run a person asked for, or TaskError (naming the input) when it cannot start: bad data or settings, a base
    that cannot be trained here, a name already taken, not enough memory."""
    if not config.settings.finetune_allowed:
        raise TaskError("Fine-tuning is off on this server (public mode). The operator can turn it on with settings.allow_finetune.")
    try:
        plan = TrainingPlan(**plan)
    except ValidationError as e:
        first = e.errors()[0]
        raise TaskError(f"Invalid {first['loc'][0]}: {first['msg']}." + (" Use letters, digits, - and _ (up to 40)." if first["loc"][0] == "name" else ""),
                        str(first["loc"][0])) from None
    try:
        spec = resolve(config.registry, base)
    except TaskError as e:
        raise TaskError(str(e), "base") from None
    if not trainable(spec):
        raise TaskError(f"{spec.id} cannot be fine-tuned here: pick a local text model (not a remote, vision or fine-tuned one).", "base")
    if not availability.available(spec):
        raise TaskError(f"{spec.id}'s weights are not on this machine and the Hugging Face Hub cannot be reached: pick a model from "
                        "the list (each can train here), or connect once so that it can be downloaded.", "base")
    device = pick_device(config.settings.device)
    if plan.qlora and device != "cuda":
        raise TaskError("QLoRA (a 4-bit base) needs a CUDA GPU; untick it to train in float32 on this machine.", "qlora")
    if f"{spec.id}+{plan.name}" in config.registry.models:
        raise TaskError(f"{spec.id}+{plan.name} exists already: choose another adapter name.", "name")
    examples = load_examples(config, file, example_set, plan.max_length)
    need, have = training_bytes(spec, device, plan.qlora), available_bytes(device)
    if need > have:
        raise TaskError(f"Training {spec.id} needs about {need / 2**30:.1f} GiB; {have / 2**30:.1f} GiB is free on {device}. "
                        "Pick a smaller base" + (" or tick QLoRA." if device == "cuda" and not plan.qlora else "."), "base")
    return FinetuneJob(spec, examples, plan, device)


# ---- running it in a worker process -----------------------------------------------------------------------------


@dataclass
class TrainingView:
    status: str = "starting"  # starting, training, done, cancelled, failed
    step: int = 0
    total: int = 0
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, training loss)
    elapsed_s: float = 0.0
    message: str = ""
    model_id: str | None = None  # the fine-tuned model, once saved and registered

    @property
    def eta_s(self) -> float | None:
        return self.elapsed_s / self.step * (self.total - self.step) if self.step and self.total and self.status == "training" else None

    @property
    def finished(self) -> bool:
        return self.status in ("done", "cancelled", "failed")


class Trainings:
    """The server's one training slot: a second run while one is going is refused with a message."""

    def __init__(self, config: AppConfig):
        self.config = config
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._running: FinetuneJob | None = None

    def claim(self, job: FinetuneJob) -> None:
        with self._lock:
            if self._running is not None:
                raise TaskError(f"A training is running ({self._running.model_id}): wait for it to finish or cancel it.")
            self._running = job

    def cancel(self) -> bool:
        """Stop the running training (its worker is killed; nothing is saved). False when none runs."""
        with self._lock:
            process = self._process
        if process is None or process.poll() is not None:
            return False
        process.kill()
        return True

    def run(self, job: FinetuneJob, on_progress: Callable[[str], None] = lambda _: None) -> Iterator[TrainingView]:
        """Train `job` in a worker, yielding its progress; claims the slot first (TaskError when taken)."""
        self.claim(job)
        view, start = TrainingView(), time.perf_counter()
        final = adapters.adapter_dirs(self.config.settings.cache_dir, [])[0] / job.model_id
        staging = final.with_name(f".{final.name}-{os.getpid()}-{int(time.time())}")
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            view.message = f"Getting {job.base.id}'s weights…"
            yield view
            try:
                folder = download.fetch(job.base, self.config.settings.cache_dir, on_progress)
            except Exception as e:  # offline, a gated or missing model: said on the page, the app serves on
                view.status, view.message = "failed", f"Could not get {job.base.id}'s weights ({type(e).__name__}: {e}). Pick another base."
                yield view
                return
            yield from self._follow(job, folder, staging, view, start)
            if view.status == "done":
                staging.rename(final)  # only a finished adapter is ever listed
                view.model_id = adapters.register(self.config.registry, final)
                view.message = f"Saved {view.model_id}: it is in every model picker now, and Compare has 'Base vs fine-tuned'."
                yield view
        finally:
            if not view.finished:  # the page closed, or the stream was dropped
                view.status, view.message = "cancelled", "Cancelled: nothing was saved."
            with self._lock:
                if self._process is not None and self._process.poll() is None:
                    self._process.kill()  # the page closed or Cancel: the worker goes, nothing is kept
                self._process, self._running = None, None
            shutil.rmtree(staging, ignore_errors=True)

    def _follow(self, job: FinetuneJob, folder: Path, staging: Path, view: TrainingView, start: float) -> Iterator[TrainingView]:
        spec = {"base_folder": str(folder), "out": str(staging), "device": job.device, "plan": job.plan.model_dump(),
                "examples": [list(e.messages) for e in job.examples],
                "card": {"name": job.plan.name, "base": job.base.id, "data_fingerprint": job.fingerprint, "examples": len(job.examples)}}
        process = subprocess.Popen([sys.executable, "-m", "qwen_playground.tasks.finetune"], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_worker_env(),
                                   start_new_session=True)
        with self._lock:
            self._process = process
        process.stdin.write(json.dumps(spec))
        process.stdin.close()
        view.status, view.message = "training", f"Starting the trainer: loading {job.base.id} in the training worker…"
        yield view
        errors, lines = [], queue.Queue()
        threading.Thread(target=lambda: errors.extend(process.stderr), daemon=True).start()  # drained, kept for a failure

        def read() -> None:  # the worker's lines, then None when it closes its output
            for line in process.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=read, daemon=True).start()
        while True:
            try:
                line = lines.get(timeout=HEARTBEAT_S)
            except queue.Empty:  # the worker is still loading: the clock keeps moving
                view.elapsed_s = time.perf_counter() - start
                yield view
                continue
            if line is None:
                break
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            view.elapsed_s = time.perf_counter() - start
            view.step, view.total = event.get("step", view.step), event.get("total", view.total)
            if event["event"] == "loss":
                view.losses.append((event["step"], event["loss"]))
            elif event["event"] == "done":
                view.status = "done"
            elif event["event"] == "error":
                view.status, view.message = "failed", f"Training failed: {event['message']}"
            view.message = view.message if view.status == "failed" else f"Step {view.step} of {view.total}"
            yield view
        process.wait()
        if view.status == "training":
            killed = process.returncode in (-signal.SIGKILL, -signal.SIGTERM)
            view.status = "cancelled" if killed else "failed"
            view.message = "Cancelled: nothing was saved." if killed else f"The trainer stopped: {''.join(errors[-3:]).strip()[-300:]}"
            yield view


def _worker_env() -> dict:
    """The app's environment, with this package importable wherever the app was started from."""
    root = str(Path(__file__).resolve().parents[2])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])), "TOKENIZERS_PARALLELISM": "false"}


# ---- the worker's side ------------------------------------------------------------------------------------------


def train(spec: dict, emit: Callable[[dict], None]) -> None:
    """Train one LoRA as `spec` says (base folder, examples, plan, output folder) and save it with its card."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    plan, device = TrainingPlan(**spec["plan"]), spec["device"]
    options = {"dtype": torch.float32 if device == "cpu" else torch.bfloat16}
    if plan.qlora:
        from transformers import BitsAndBytesConfig

        options["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                                            bnb_4bit_compute_dtype=torch.bfloat16)
    tokenizer = AutoTokenizer.from_pretrained(spec["base_folder"])
    model = AutoModelForCausalLM.from_pretrained(spec["base_folder"], device_map=device, **options)
    data = Dataset.from_list([{"prompt": m[:-1], "completion": m[-1:]} for m in spec["examples"]])  # loss on the answers only

    class Progress(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                emit({"event": "loss", "step": state.global_step, "total": state.max_steps, "loss": float(logs["loss"])})

        def on_step_end(self, args, state, control, **kwargs):
            emit({"event": "step", "step": state.global_step, "total": state.max_steps})

    config = SFTConfig(output_dir=str(Path(spec["out"]) / "trainer"), max_length=plan.max_length, learning_rate=plan.learning_rate,
                       num_train_epochs=plan.epochs, max_steps=plan.max_steps or -1, per_device_train_batch_size=plan.batch_size,
                       logging_steps=1, save_strategy="no", report_to="none", use_cpu=device == "cpu", bf16=device != "cpu",
                       gradient_checkpointing=False, disable_tqdm=True, seed=0)
    lora = LoraConfig(r=plan.rank, lora_alpha=plan.alpha, lora_dropout=plan.dropout, target_modules=list(plan.targets), task_type="CAUSAL_LM")
    start = time.perf_counter()
    trainer = SFTTrainer(model=model, args=config, train_dataset=data, processing_class=tokenizer, peft_config=lora, callbacks=[Progress()])
    result = trainer.train()
    trainer.model.save_pretrained(spec["out"])
    shutil.rmtree(Path(spec["out"]) / "trainer", ignore_errors=True)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    card = adapters.Card(**spec["card"], settings=plan.model_dump(exclude={"name"}), steps=result.global_step,
                         final_loss=losses[-1] if losses else None, seconds=round(time.perf_counter() - start, 1),
                         created=time.strftime("%Y-%m-%d %H:%M"))
    (Path(spec["out"]) / adapters.CARD).write_text(card.model_dump_json(indent=2), encoding="utf-8")
    emit({"event": "done", "step": result.global_step, "total": trainer.state.max_steps})


def main() -> None:
    """The worker: one job as JSON on stdin, progress as JSON lines on stdout (what libraries print goes to stderr)."""
    protocol = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)

    def emit(event: dict) -> None:
        protocol.write(json.dumps(event) + "\n")
        protocol.flush()

    try:
        train(json.loads(sys.stdin.read()), emit)
    except Exception as e:  # the parent shows it; the traceback goes to stderr
        import traceback

        traceback.print_exc()
        emit({"event": "error", "message": f"{type(e).__name__}: {e}"})
        sys.exit(1)


if __name__ == "__main__":
    main()
