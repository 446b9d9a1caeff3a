"""The Fine-tune tab: teach a small model with LoRA, watch the loss fall, then find it in every model picker.

Endpoint `/finetune` (file, example, base, name, rank, alpha, dropout,
learning_rate, epochs, max_steps, max_length, qlora) -> streamed (progress,
loss plot, status, report); `/finetune_cancel` stops the running training.
"""

from __future__ import annotations

import gradio as gr
import pandas as pd

from ..core.config import AppConfig
from ..core.devices import pick_device
from ..service import Service
from ..tasks import TaskError
from ..tasks import finetune as task
from .common import follows_registry, on_page_load, refusals, upload_or_example, user_of, when_valid

PREVIEW_COLUMNS = ["line", "conversation", "answer to learn", "tokens"]


def preview(config: AppConfig, file, example, max_length) -> tuple[str, list]:
    """The examples a run would learn, or the reason the file cannot be used, in place of the preview."""
    try:
        examples = task.load_examples(config, file, example, int(max_length))
    except TaskError as e:
        return f"⚠️ {e}", []
    tokens = [task.tokens_of(e) for e in examples]
    rows = [[e.line, " · ".join(f"{m['role']}: {m['content']}" for m in e.messages[:-1]), e.messages[-1]["content"], n]
            for e, n in zip(examples, tokens, strict=True)]
    return f"**{len(examples)} examples** · {sum(tokens):,} tokens (longest {max(tokens):,})", rows


def progress_html(view: task.TrainingView) -> str:
    value = f'value="{view.step}" max="{view.total}"' if view.total else ""
    eta = f" · about {view.eta_s:.0f} s left" if view.eta_s is not None else ""
    line = view.status.capitalize() if view.finished else view.message  # the outcome's own message shows below
    return f'<progress {value} style="width:100%"></progress><div>{line} · {view.elapsed_s:.0f} s{eta}</div>'


def layout(config: AppConfig, device: str) -> dict:
    bases = [s.id for s in task.bases(config.registry)]
    default = next((s.id for s in config.registry.choices("chat") if s.id in bases), bases[0] if bases else None)
    hidden = sum(task.trainable(s) for s in config.registry.models.values()) - len(bases)
    sets = task.example_sets()
    demo_rate = config.demo  # tiny random demo networks need a far larger rate than real models to move in a few steps
    c: dict = {}
    gr.Markdown("Teach a small model something with **LoRA** (Qwen's recipe: peft + trl's SFTTrainer, r 16, alpha 32, "
                "dropout 0.1 on the q/k/v/o projections, the loss on the answers only), watch the loss fall, then ask the "
                "base and the tuned model side by side in Compare. Data: JSONL or CSV with `instruction` and `output` "
                "(optional `input`, `system`), or JSONL lines with a chat `messages` list ending with the assistant's answer.")
    if config.demo:
        gr.Markdown("*Demo mode: the networks are tiny and random. The loss falls within the 12 steps, but a tuned demo model "
                    "rarely says the taught fact word for word; a real model (Qwen2.5-0.5B-Instruct, Qwen3-0.6B) learns it.*")
    c["file"], c["example"], beside = upload_or_example("Training examples (JSONL or CSV)", [".jsonl", ".json", ".csv"],
                                                        {e.name: e.description for e in sets.values()}, next(iter(sets)))
    with beside:  # filled when the page opens: counting tokens needs the tokenizer, which loads after the page is up
        c["preview"] = gr.Markdown("Counting the examples' tokens…")
    c["rows"] = gr.Dataframe(headers=PREVIEW_COLUMNS, interactive=False, label="Examples", max_height=220, wrap=True)
    with gr.Row():
        c["base"] = follows_registry(gr.Dropdown(bases, value=default, label="Base model (local text models)",
                                                 info=f"The models that can train here now; {hidden} more need their weights downloaded "
                                                      "(connect once)" if hidden else "The models that can train here now"),
                                     lambda: [s.id for s in task.bases(config.registry)])
        c["name"] = gr.Textbox(next(iter(sets)), label="Adapter name", info="The tuned model is listed as <base>+<name>")
    with gr.Accordion("Training settings (the guide's defaults)", open=False):
        with gr.Row():
            c["rank"] = gr.Slider(1, 128, 16, step=1, label="LoRA rank r")
            c["alpha"] = gr.Slider(1, 256, 32, step=1, label="LoRA alpha")
            c["dropout"] = gr.Slider(0, 0.5, 0.1, step=0.05, label="LoRA dropout")
        with gr.Row():
            c["learning_rate"] = gr.Number(1e-2 if demo_rate else 2e-4, label="Learning rate",
                                           info="2e-4 suits real models; the tiny demo networks need about 1e-2")
            c["epochs"] = gr.Slider(1, 20, 3, step=1, label="Epochs")
            c["max_steps"] = gr.Number(12 if demo_rate else 0, precision=0, label="Max steps (0: as the epochs take)")
            c["max_length"] = gr.Slider(64, 4096, 512, step=64, label="Max length (tokens per example)")
        c["qlora"] = gr.Checkbox(False, label="QLoRA: the base in 4-bit", interactive=device == "cuda",
                                 info="bf16 on CUDA (4-bit with QLoRA); float32 on a CPU" if device == "cuda" else "Needs a CUDA GPU; this machine trains in float32")
    with gr.Row():
        c["train"] = gr.Button("Train", variant="primary")
        c["cancel"] = gr.Button("Cancel", variant="stop")
    c["progress"] = gr.Markdown()  # a <progress> bar and a line (gr.HTML's code is 35 KiB more)
    c["loss"] = gr.LinePlot(x="step", y="loss", title="Training loss", height=240, x_title="step", y_title="loss")
    c["status"] = gr.Markdown()
    c["report"] = gr.JSON(visible=False, label="Report")
    return c


def build_finetune_tab(config: AppConfig, service: Service):
    """The tab; returns the training event (the app refreshes every model picker after it), or None when it is off."""
    if not config.settings.finetune_allowed:
        gr.Markdown("Fine-tuning is off on this server: it is a public deployment. The operator can turn it on with "
                    "`settings.allow_finetune: true` (see docs/tabs.md, *Fine-tune*).")
        return None
    device = pick_device(config.settings.device)
    c, trainings = layout(config, device), task.Trainings(config)
    keys = ("rank", "alpha", "dropout", "learning_rate", "epochs", "max_steps", "max_length", "qlora")

    def prepare(file, example, base, name, rank, alpha, dropout, learning_rate, epochs, max_steps, max_length, qlora=False, user=""):
        plan = dict(zip(("name", *keys), (str(name or "").strip(), int(rank), int(alpha), float(dropout), float(learning_rate), int(epochs),
                                          int(max_steps or 0), int(max_length), bool(qlora)), strict=True))
        return task.prepare(config, file, example, base, plan, user)

    def train(file, example, base, name, rank, alpha, dropout, learning_rate, epochs, max_steps, max_length, qlora=False,
                 request: gr.Request = None):
        with refusals():
            service.admit(user_of(request))
            job = prepare(file, example, base, name, rank, alpha, dropout, learning_rate, epochs, max_steps, max_length, qlora)
            for view in trainings.run(job):
                losses = pd.DataFrame(view.losses, columns=["step", "loss"]).astype({"step": int, "loss": float})  # a number axis
                report = {"status": view.status, "step": view.step, "total": view.total, "losses": view.losses, "model": view.model_id}
                yield progress_html(view), losses, view.message if view.finished else "", report

    def cancel() -> str:
        """Stop the running training; nothing is saved."""
        return "Cancelling…" if trainings.cancel() else "No training is running."

    inputs = [c["file"], c["example"], c["base"], c["name"], *(c[k] for k in keys)]
    event = when_valid(c["train"].click, train, prepare, inputs, [c["progress"], c["loss"], c["status"], c["report"]],
                       api_name="finetune", concurrency_id="finetune", concurrency_limit=2)
    c["cancel"].click(cancel, None, c["status"], api_name="finetune_cancel", queue=False)
    private = {"api_visibility": "private", "queue": False}
    show = (lambda f, e, n: preview(config, f, e, n), [c["file"], c["example"], c["max_length"]], [c["preview"], c["rows"]])
    on_page_load(*show)
    for trigger in (c["file"].change, c["example"].change, c["max_length"].release):
        trigger(*show, **private)
    return event
