"""The Multilingual tab: one prompt answered in several languages side by side, each answer's language checked.

Endpoints: `/multilingual` (prompt, languages, model, precision) -> streamed
(one pane per offered language, token-cost table, results as JSON);
`/inspect_multilingual` (the same inputs; the first language's request).
"""

from __future__ import annotations

import gradio as gr

from ..core.config import AppConfig
from ..languages import languages as offered_languages
from ..service import Service
from ..tasks import multilingual as task
from .common import Stops, go_and_stop, model_picker, precision_picker, start_job, when_valid
from .inspector_tab import inspector_panel

DEFAULT = ["English", "Chinese", "Spanish"]


def build_multilingual_tab(config: AppConfig, service: Service) -> dict:
    stops = Stops()
    names = list(offered_languages())
    with gr.Row():
        prompt = gr.Textbox(label="Prompt", lines=3, scale=3, placeholder="e.g. Explain why the sky is blue in two sentences.")
        with gr.Column(scale=2):
            chosen = gr.CheckboxGroup(names, value=DEFAULT, label=f"Answer in (up to {task.MAX_CHOSEN})")
            model, _ = model_picker(config.registry, "multilingual")
            precision = precision_picker(service.capabilities())
            ask, stop = go_and_stop("Answer in each language")
    with gr.Row(equal_height=False):
        panes = [gr.Markdown(visible=n in DEFAULT, min_height=120, container=True, label=n, elem_classes="language-pane") for n in names]
    gr.Markdown("**What each script costs.** The same sentence, tokenized by the model's tokenizer: "
                "scripts the vocabulary covers less well need more tokens for the same meaning.")
    costs = gr.Dataframe(label="Token cost", headers=task.COST_COLUMNS, interactive=False)
    results = gr.JSON(label="Results", visible=False)

    def prepare(prompt, languages, model, precision="full", user=""):
        return task.prepare(config, prompt, languages, model, precision, user)

    def answer_all(prompt, languages, model, precision="full", request: gr.Request = None):
        job = start_job(service, request, prepare, prompt, languages, model, precision)
        with stops.running(request) as stop:
            for view in task.run(service, job, config.settings.cache_dir, stop):
                panes_out = [view.panes.get(n, "") for n in names]
                yield *panes_out, view.table if view.table is not None else gr.skip(), view.summary or gr.skip()

    when_valid(ask.click, answer_all, prepare, [prompt, chosen, model, precision], [*panes, costs, results], api_name="multilingual",
               concurrency_id="generate")
    stops.bind(stop, answer_all)
    chosen.change(lambda picked: [gr.Markdown(visible=n in (picked or [])) for n in names], chosen, panes, api_visibility="private", queue=False)
    ticked = gr.State(DEFAULT)  # the languages ticked before the latest click

    def pick(picked, before):
        kept, refused = task.within_limit(list(picked or []), list(before or []))
        if refused:
            gr.Warning(f"At most {task.MAX_CHOSEN} languages at once: untick one before adding {', '.join(refused)}.")
        return kept, kept

    chosen.input(pick, [chosen, ticked], [chosen, ticked], api_visibility="private")  # queued: a toast needs the queue
    inspector_panel(config, [prompt, chosen, model, precision], prepare, "inspect_multilingual")
    return {"prompt": prompt, "languages": chosen, "model": model}
