"""Speculative decoding as a tab offers it: the drafts a model can have, a choice checked before sending, and the
answer's tokens coloured by where they came from.

`choices` is what a drafts picker lists for a model (off, prompt lookup, the
models of its vocabulary that are no larger: `Registry.drafts_for`); `checked`
refuses a choice the model cannot take, with the choices it can; `to_markdown`
is the fold under an answer (Chat, each Compare pane) and what export keeps.
"""

from __future__ import annotations

from ..core.generation import DRAFT_TOKENS, MAX_DRAFT_TOKENS, PROMPT_LOOKUP, Drafts
from ..core.registry import ModelSpec, Registry
from . import TaskError
from .token_choices import strip_text

TITLE = "⚡ Drafted tokens"
OFF = ""


def choices(registry: Registry, spec: ModelSpec) -> list[tuple[str, str]]:
    """(label, value) for a drafts picker: off, then what `spec` can take (nothing for a model on a server)."""
    if spec.endpoint:
        return [("Off (a server drafts on its own)", OFF)]
    return [("Off", OFF), ("Prompt lookup", PROMPT_LOOKUP), *((f"Draft: {m.id}", m.id) for m in registry.drafts_for(spec))]


def kept(registry: Registry, spec: ModelSpec, current: object) -> str:
    """What a drafts picker shows once its model changes to `spec`: the choice it had where `spec` takes it too (a
    lesson sets both at once), else off."""
    return current if current in [value for _, value in choices(registry, spec)] else OFF


def checked(registry: Registry, spec: ModelSpec, draft: object, length: object = DRAFT_TOKENS) -> tuple[str, int]:
    """(draft, draft length) as a request takes them, or TaskError saying what `spec` can take."""
    draft = draft or OFF
    allowed = [value for _, value in choices(registry, spec)]
    if draft not in allowed:
        if spec.endpoint:
            raise TaskError(f"{spec.id} runs on a server: drafts are for models that run here (a server such as vLLM has its "
                            "own speculative decoding settings).", "draft")
        raise TaskError(f"'{draft}' cannot draft for {spec.id}: a draft shares its vocabulary and is no larger. Choose one of: "
                        f"{', '.join(v or 'off' for v in allowed)}.", "draft")
    try:
        tokens = int(length)
    except (TypeError, ValueError):
        raise TaskError(f"The draft length must be a whole number from 1 to {MAX_DRAFT_TOKENS}.", "draft_tokens") from None
    if not 1 <= tokens <= MAX_DRAFT_TOKENS:
        raise TaskError(f"The draft length must be from 1 to {MAX_DRAFT_TOKENS} tokens (it is {tokens}).", "draft_tokens")
    return draft, tokens


def to_markdown(drafts: Drafts) -> str:
    """The answer's tokens, those from kept guesses in blue, then what the drafts bought."""
    if not drafts.tokens:
        return f"*{drafts.note or 'No drafts for this answer.'}*"
    strip = "".join(f'<span style="{"background:#bfdbfe" if guessed else "background:#f3f4f6"};color:#111;border-radius:3px;'
                    f'padding:0 1px;white-space:pre-wrap">{strip_text(text)}</span>'
                    for text, guessed in drafts.tokens)
    rate = f" ({drafts.acceptance:.0%})" if drafts.acceptance is not None else ""
    per_pass = f"{drafts.tokens_per_pass:.2f}" if drafts.tokens_per_pass else "?"
    return "\n".join([strip, "", f"Blue: a guess from {drafts.method} that the model kept; grey: the model's own token. "
                      f"{drafts.accepted} of {drafts.drafted} guesses kept{rate}, {drafts.rejected} rejected; {len(drafts.tokens)} tokens "
                      f"in {drafts.passes} passes of the model ({per_pass} a pass, where one token a pass is decoding without drafts)."])
