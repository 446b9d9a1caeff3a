"""The Multilingual tab: one prompt answered in several languages side by side, each answer's language checked.

Endpoint `/multilingual` (prompt, languages, model) -> streamed (one pane per
offered language, token-cost table, results as JSON).
"""

from __future__ import annotations

import gradio as gr

from ..backends import Backend
from ..chat import ChatTurn
from ..config import AppConfig
from ..generation import Request
from ..inspector import tokenizer_for
from ..languages import Detection, detect, get_language, matches, token_costs
from ..languages import languages as offered_languages
from ..parallel import stream_all
from ..prompts import load_template
from .common import Pacer, answer_text, metrics_text, model_picker, precision_picker, require_text, resolve
from .inspector_tab import inspector_panel

MAX_CHOSEN = 6
DEFAULT = ["English", "Chinese", "Spanish"]


def pane_markdown(name: str, turn: ChatTurn, detection: Detection | None) -> str:
    """One language's pane: answer, then (once finished) the detected language and metrics."""
    info = get_language(name)
    lines = [f"### {info.label}", answer_text(turn) or ("*thinking…*" if turn.thinking else "*waiting…*")]
    if turn.error:
        lines.append(f"**⚠️ {turn.error}**")
    elif detection is not None:
        if matches(detection, info):
            lines.append(f"✅ detected {detection.language} ({detection.confidence:.0%})")
        else:
            lines.append(f"⚠️ asked for {info.name}, detected {detection.language or 'nothing certain'} ({detection.confidence:.0%})")
        lines.append(f"<small>{metrics_text(turn)}</small>")
    return "\n\n".join(lines)


def build_multilingual_tab(config: AppConfig, backend: Backend) -> dict:
    registry, template = config.registry, load_template("multilingual")
    names = list(offered_languages())
    with gr.Row():
        prompt = gr.Textbox(label="Prompt", lines=3, scale=3, placeholder="e.g. Explain why the sky is blue in two sentences.")
        with gr.Column(scale=2):
            chosen = gr.CheckboxGroup(names, value=DEFAULT, label=f"Answer in (up to {MAX_CHOSEN})")
            model, _ = model_picker(registry, "multilingual")
            precision = precision_picker(backend)
            with gr.Row():
                ask = gr.Button("Answer in each language", variant="primary")
                stop = gr.Button("Stop", variant="stop")
    with gr.Row(equal_height=False):
        panes = [gr.Markdown(visible=n in DEFAULT, min_height=120, container=True, label=n, elem_classes="language-pane") for n in names]
    gr.Markdown("**What each script costs.** The same sentence, tokenized by the model's tokenizer: "
                "scripts the vocabulary covers less well need more tokens for the same meaning.")
    costs = gr.Dataframe(label="Token cost",headers=["language", "tokens", "characters", "chars/token", "vs English", "answer tokens"], interactive=False)
    results = gr.JSON(label="Results", visible=False)

    def language_messages(prompt_text: str, language: str) -> list[dict]:
        return [{"role": "system", "content": template.render_system(language=language)},
                {"role": "user", "content": template.render_user(prompt=prompt_text, language=language)}]

    def answer_all(prompt, languages, model, quantization="none"):
        prompt_text = require_text(prompt, "a prompt")
        chosen_names = list(languages or [])
        if not chosen_names:
            raise gr.Error("Pick at least one language.")
        if len(chosen_names) > MAX_CHOSEN:
            raise gr.Error(f"Pick at most {MAX_CHOSEN} languages at once (you picked {len(chosen_names)}).")
        try:
            infos = [get_language(n) for n in chosen_names]
        except ValueError as e:
            raise gr.Error(str(e)) from None
        spec = resolve(registry, model)
        requests = [Request(spec.id, language_messages(prompt_text, info.name), spec.preset(False), thinking=False, quantization=quantization) for info in infos]
        turns = {info.name: ChatTurn() for info in infos}
        detections: dict[str, Detection] = {}

        def pane_updates() -> list[str]:
            return [pane_markdown(n, turns[n], detections.get(n)) if n in turns else "" for n in names]

        yield *pane_updates(), gr.skip(), gr.skip()
        pacer = Pacer()
        for index, event in stream_all(backend, requests):
            name = infos[index].name
            turn = turns[name]
            turn.apply(event)
            if turn.finish_reason and name not in detections:
                detections[name] = detect(answer_text(turn))
            if pacer.due(event, index):
                yield *pane_updates(), gr.skip(), gr.skip()
        table = [[row["language"], row["tokens"], row["characters"], row["chars/token"], row["vs English"],
                  turns[name].metrics.answer_tokens if turns[name].metrics else None]
                 for row, name in zip(token_costs(tokenizer_for(spec, config.settings.cache_dir)[0], chosen_names), chosen_names, strict=True)]
        summary = {name: {"answer": answer_text(turn), "error": turn.error,
                          "detected": detections[name].language if name in detections else None,
                          "confidence": round(detections[name].confidence, 3) if name in detections else None,
                          "matches": matches(detections[name], get_language(name)) if name in detections else False,
                          "answer_tokens": turn.metrics.answer_tokens if turn.metrics else None}
                   for name, turn in turns.items()}
        yield *pane_updates(), table, summary

    event = ask.click(answer_all, [prompt, chosen, model, precision], [*panes, costs, results], api_name="multilingual", concurrency_id="generate")
    stop.click(None, cancels=[event])
    chosen.change(lambda picked: [gr.Markdown(visible=n in (picked or [])) for n in names], chosen, panes, api_visibility="private", queue=False)
    inspector_panel(config, [prompt, chosen, model, precision],
                    lambda p, langs, m: (m, language_messages(require_text(p, "a prompt"), (langs or ["English"])[0]), False))
    return {"prompt": prompt, "languages": chosen, "model": model}
