"""The Lessons tab: open a shipped lesson, a lesson file or a lesson link; save the current tab as either.

Each content tab hands over its fields (name -> component, named as in its
API). Opening a lesson fills them and switches to its tab; a model or option
this server lacks is replaced by the tab's default and named in the notice.
"""

from __future__ import annotations

import functools
import html
import tempfile
from pathlib import Path

import gradio as gr

from ..core.registry import Registry
from ..lessons import FieldSpec, Lesson, closest_model, from_json, from_link, load_lessons, resolve, to_json, to_link
from . import uploads
from .common import refuse

Fields = dict[str, dict[str, gr.components.Component]]


def _choices(component) -> list | None:
    choices = getattr(component, "choices", None)
    return None if choices is None else [c[1] if isinstance(c, (tuple, list)) else c for c in choices]


def opening(lesson: Lesson, specs: dict, flat: list) -> list:
    """The outputs that open `lesson`: its tab, a notice, the current tab, what was substituted, every field's value."""
    tab, values, notes = resolve(lesson, specs)
    for note in notes:  # toasts: seen from whichever tab the lesson opens
        gr.Warning(note.replace("**", ""))
    if tab is None:
        return [gr.skip(), notes[0], gr.Markdown(f"⚠️ {notes[0]}", visible=True), gr.skip(), gr.skip(), *[gr.skip()] * len(flat)]
    message = f"Opened **{html.escape(lesson.title)}**. {html.escape(lesson.description)}" + "".join(f"\n\n⚠️ {n}" for n in notes)
    banner = f"📘 **Lesson: {html.escape(lesson.title)}**" + (f"  \n{html.escape(lesson.description)}" if lesson.description else "") + \
        "".join(f"  \n⚠️ {n}" for n in notes)
    replaced = {k: v for k, v in values.items() if lesson.values.get(k) != v}
    return [gr.Tabs(selected=tab), message, gr.Markdown(banner, visible=True), tab, (lesson, replaced),
            *[values[key] if t == tab and key in values else gr.skip() for t, key, _ in flat]]


def lesson_from(tab: str, title_text: str, was, picked: dict) -> Lesson:
    """The tab's lesson from its field values. Re-sharing an opened lesson (`was`: it, and what this server put in
    place of its values) keeps its title and what it asked for where this server substituted."""
    title = (title_text or "").strip()
    if was and was[0].tab == tab:
        lesson, replaced = was
        picked = picked | {k: lesson.values[k] for k, v in replaced.items() if picked.get(k) == v}
        title = title or lesson.title
    return Lesson(title=title or f"My {tab} lesson", tab=tab, values=picked)


def lesson_file(lesson: Lesson) -> str:
    """The lesson as a JSON file to download; returns its path."""
    path = Path(tempfile.mkdtemp(prefix="qp-lesson-")) / "lesson.json"
    path.write_text(to_json(lesson), encoding="utf-8")
    return str(path)


def layout(shipped: dict[str, Lesson]) -> dict:
    c: dict = {}
    gr.Markdown("A lesson is a tab's prompt, settings, models and panes, ready to hand to students as a file or a link.")
    with gr.Row():
        with gr.Column():
            c["shipped"] = gr.Dropdown([(lesson.title, name) for name, lesson in shipped.items()], label="Lessons that come with the playground")
            c["open"] = gr.Button("Open lesson", variant="primary")
            c["upload"] = uploads.UploadButton("Open a lesson file (.json)", file_types=[".json"])
        with gr.Column():
            c["title"] = gr.Textbox(label="Title for the current tab's lesson", placeholder="e.g. Week 3: thinking budgets")
            c["make_link"] = gr.Button("Make a link")
            c["link"] = gr.Textbox(label="Lesson link", buttons=["copy"])
            c["download"] = gr.DownloadButton("Download lesson (.json)")
    c["notice"] = gr.Markdown(label="Lesson notice")
    return c


def field_specs(fields: Fields, registry: Registry) -> dict[str, dict[str, FieldSpec]]:
    """What each field accepts here; a missing model is replaced by the offered one most like it."""
    substitute = functools.partial(closest_model, registry)
    return {tab: {key: FieldSpec(component.value, _choices(component), substitute if key.startswith("model") else None)
                  for key, component in group.items()} for tab, group in fields.items()}


def build_lessons_tab(tabs: gr.Tabs, fields: Fields, current: gr.State, registry: Registry, shown: gr.Tab, banner: gr.Markdown) -> list:
    """Build the tab (`shown` is the Lessons tab itself; `banner`, above every tab, shows the open lesson); returns the
    (function, outputs) pair used to open a lesson link on page load."""
    shipped = load_lessons()
    flat = [(tab, key, component) for tab, group in fields.items() for key, component in group.items()]
    c = layout(shipped)
    opened = gr.State(None)  # (the lesson as written, {field: the value put in its place here})
    outputs = [tabs, c["notice"], banner, current, opened, *(component for _, _, component in flat)]
    specs = field_specs(fields, registry)

    def apply(lesson: Lesson) -> list:
        return opening(lesson, specs, flat)

    def lesson_of(tab: str, title_text: str, was, values: tuple) -> Lesson:
        if tab not in fields:
            raise refuse(f"Open the tab you want to save ({', '.join(t.capitalize() for t in fields)}) first, then come back here.")
        return lesson_from(tab, title_text, was, {key: value for (t, key, _), value in zip(flat, values, strict=True) if t == tab})

    def open_file(path):
        try:
            return apply(from_json(Path(path).read_text(encoding="utf-8")))
        except (ValueError, OSError) as e:
            raise refuse(str(e)) from None

    def open_link(request: gr.Request):
        packed = request.query_params.get("lesson") if request else None
        if not packed:
            return [gr.skip()] * len(outputs)
        try:
            return apply(from_link(packed))
        except ValueError as e:
            gr.Warning(str(e))
            return [gr.skip(), f"⚠️ {e}", gr.Markdown(f"⚠️ This lesson link could not be read: {e}", visible=True), gr.skip(), gr.skip(),
                    *[gr.skip()] * len(flat)]

    def link_for(request: gr.Request, tab, title_text, was, *values):
        page = (request.headers.get("referer") if request else None) or f"{request.url.scheme}://{request.url.netloc}/"
        return to_link(lesson_of(tab, title_text, was, values), page)

    def file_for(tab, title_text, was, *values):
        return lesson_file(lesson_of(tab, title_text, was, values))

    def open_named(name):
        if name not in shipped:
            raise refuse("Pick a lesson from the list first.")
        return apply(shipped[name])

    all_values = [component for _, _, component in flat]
    c["open"].click(open_named, c["shipped"], outputs, api_visibility="private")
    c["upload"].upload(open_file, c["upload"], outputs, api_visibility="private")
    c["make_link"].click(link_for, [current, c["title"], opened, *all_values], c["link"], api_visibility="private")
    # the file is ready before the click (one click downloads): written whenever this tab is shown or the title changes,
    # since the other tabs' fields cannot change while it is shown
    for refresh in (shown.select, c["title"].change):
        refresh(file_for, [current, c["title"], opened, *all_values], c["download"], api_visibility="private")
    return [open_link, outputs]
