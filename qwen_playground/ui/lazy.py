"""Parts of the page that are built at start but put on the page the first time they open.

Gradio's page does work for every component in its layout before anyone can type: with all fourteen tabs that
was a third of a second of one blocked task (Lighthouse's total blocking time) on 427 components, of which the
opening tab needs 61. A part built `later` keeps everything the server knows of it (its events, its API names),
but the first page's layout leaves it out, so its components are neither made nor their code fetched. When it
first opens, a `gr.render` puts those same components (same ids, so the same events) on the visitor's page.

Until then the part answers as if it were there. What events send it (a lesson's values, a page load's choices)
is remembered per session and is what it shows when placed; and an event that reads it gets what it holds (what
was last sent, else its starting value): Gradio's page sends None for a component it has not made.
"""

from __future__ import annotations

import copy

import gradio as gr
from gradio.context import LocalContext, get_render_context


class LazyBlocks(gr.Blocks):
    """The app's Blocks, with parts built `later`."""

    later_ids: set[int] = set()

    def get_config_file(self):
        """The page's configuration marks later parts not visible: the page waits for every visible component to
        appear before it runs its page-load events."""
        config = super().get_config_file()
        for component in config["components"]:
            if component["id"] in self.later_ids:
                component["props"]["visible"] = False
        return config

    async def preprocess_data(self, block_fn, inputs, state, explicit_call=False):
        if state is not None and self.later_ids:
            held, placed = _sent(state), _placed(state)
            inputs = [held.get(block._id, {}).get("value", block.value)
                      if value is None and block._id in self.later_ids and block._id not in placed and not block.stateful
                      else value for block, value in zip(block_fn.inputs, inputs)] + list(inputs[len(block_fn.inputs):])
        return await super().preprocess_data(block_fn, inputs, state, explicit_call)

    async def postprocess_data(self, block_fn, predictions, state):
        sent = await super().postprocess_data(block_fn, predictions, state)
        if state is not None and self.later_ids:
            held = _sent(state)
            for block, value in zip(block_fn.outputs, sent):
                if block._id in self.later_ids and not block.stateful:
                    props = held.setdefault(block._id, {})
                    if isinstance(value, dict) and value.get("__type__") == "update":  # new props (choices, a value, ...)
                        props.update({k: v for k, v in value.items() if k != "__type__"})
                    else:
                        props["value"] = value
        return sent


def later(holder: gr.blocks.BlockContext) -> gr.State:
    """Take what `holder` (a tab, built) holds off the first page; put it on a visitor's page, as that session last
    set it, the first time the state returned is set to True (by the event that opens it)."""
    root = gr.context.Context.root_block
    parts = list(holder.children)
    holder.children.clear()
    ids = {i for part in parts for i in _ids(part)}
    root.later_ids = root.later_ids | ids
    opened = gr.State(False)
    with holder:
        @gr.render(triggers=[opened.change], show_progress="hidden")
        def place(request: gr.Request):
            session = root.state_holder[request.session_hash]
            blocks, held = LocalContext.blocks_config.get().blocks, _sent(session)  # this session's
            for block_id in ids:  # as built, then as last sent (a copy for this session: the built one is shared)
                block = copy.copy(root.blocks[block_id])
                block.page = holder.page
                for prop, value in held.get(block_id, {}).items():
                    if prop in vars(block):
                        setattr(block, prop, value)
                blocks[block_id] = block
            _placed(session).update(ids)
            here = get_render_context()
            for part in parts:
                here.add(part)
    return opened


def _sent(session) -> dict[int, dict]:
    """{component id: the props and value events sent it}, for this session's later parts."""
    return session.__dict__.setdefault("qwen_playground_sent", {})


def _placed(session) -> set[int]:
    return session.__dict__.setdefault("qwen_playground_placed", set())


def _ids(block: gr.blocks.Block) -> set[int]:
    return {block._id}.union(*(_ids(child) for child in getattr(block, "children", [])))
