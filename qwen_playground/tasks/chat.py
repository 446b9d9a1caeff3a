"""The Chat task: one turn of a multi-turn conversation, with thinking, presets, trimming and a budget.

`prepare` turns a turn's `ChatInputs` (the message, the `Conversation` so far,
the tab's `ChatSettings`) into the request it sends and the conversation with
the new message and an empty answer; `run` streams the answer into it. A new
message goes at the end of the conversation, or (`after`) under an earlier
message, as a sibling of what was there: that is how an edit branches. With
no message, the answer is regenerated under the last person's message. The
inspector calls `prepare` too.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

from pydantic import ValidationError

from ..backends import Backend
from ..core.config import AppConfig
from ..core.generation import DRAFT_TOKENS, TOP_ALTERNATIVES, Error, Request, SamplingParams, TokenChoices
from ..core.prompts import load_template
from ..core.registry import ModelSpec
from ..documents import as_text, is_document, read_cached
from ..service.lengths import conversation_tokens, count_tokens, trim_history
from ..vision import UploadRejected, check_image, image_cost
from . import TaskError, drafts, refuse_if_too_long, resolve, tools
from .conversation import AssistantTurn, Conversation, Message, model_messages, user_content
from .streaming import stream_turns

MAX_IMAGES = 8  # per message
IMAGE_TOKENS = 1280  # at most this many tokens per image (the Vision tab's default), in the model's own token side
SAMPLING_FIELDS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "presence_penalty", "max_new_tokens")
# the settings in the order the tab and the `/chat` API give them, after the message and the history
SETTINGS = ("model", "system_prompt", "thinking", *SAMPLING_FIELDS, "thinking_budget", "precision", "trim_history", "alternatives")


def preset_values(spec: ModelSpec, thinking: bool) -> list:
    """The sampling sliders' values for a model and mode, in SAMPLING_FIELDS order."""
    params = spec.preset(thinking)
    return [getattr(params, f) for f in SAMPLING_FIELDS]


def sampling_of(*values) -> SamplingParams:
    """Sampling settings from slider values in SAMPLING_FIELDS order, or TaskError naming the bad one."""
    try:
        return SamplingParams(**dict(zip(SAMPLING_FIELDS, values, strict=True)))
    except ValidationError as e:
        first = e.errors()[0]
        raise TaskError(f"Invalid {first['loc'][0]}: {first['msg']}.", str(first["loc"][0])) from None


@dataclass(frozen=True)
class ChatSettings:
    """How the Chat tab answers: the model and everything it is asked with."""

    model: str
    system_prompt: str = ""
    thinking: bool = False
    sampling: SamplingParams | None = None  # None: the model's preset for the thinking mode
    thinking_budget: int = 0
    precision: str = "full"
    trim_history: bool = False
    alternatives: bool = False  # record each token's probability and its top alternatives ("why this token?")
    tools: tuple[str, ...] = ()  # tools the model may call (the Tools tab's loop, inside the answer); none: a plain answer
    reasoning_effort: str = ""  # a family with that switch (Qwen3.8): how hard it reasons; "": its default
    keep_reasoning: bool = False  # a family with that switch (Qwen3.6, 3.8): earlier answers keep their reasoning in the prompt
    draft: str = ""  # speculative decoding: "" off, prompt lookup, or a draft model's id (tasks/drafts.py)
    draft_tokens: int = DRAFT_TOKENS  # guesses per pass of the model

    @classmethod
    def from_values(cls, model: str, system_prompt: str, thinking: bool, temperature: float, top_p: float, top_k: int, min_p: float,
                    repetition_penalty: float, presence_penalty: float, max_new_tokens: int, thinking_budget: int = 0,
                    precision: str = "full", trim_history: bool = False, alternatives: bool = False) -> ChatSettings:
        """The values in SETTINGS order, as the tab's widgets and the `/chat` API give them (sampling as seven sliders)."""
        sampling = sampling_of(temperature, top_p, top_k, min_p, repetition_penalty, presence_penalty, max_new_tokens)
        return cls(model, system_prompt or "", bool(thinking), sampling, int(thinking_budget or 0), precision, bool(trim_history),
                   bool(alternatives))

    def with_tools(self, names: object) -> ChatSettings:
        """These settings with the tools ticked (names, as the tab's picker or the API give them; None: none)."""
        return replace(self, tools=(names,) if isinstance(names, str) else tuple(names or ()))

    def with_reasoning(self, effort: object = "", keep: object = False) -> ChatSettings:
        """These settings with the family's reasoning switches (as the tab's controls or the API give them)."""
        return replace(self, reasoning_effort=effort or "", keep_reasoning=bool(keep))

    def with_drafts(self, draft: object = "", tokens: object = DRAFT_TOKENS) -> ChatSettings:
        """These settings with speculative decoding (as the tab's controls or the API give them; checked when sent)."""
        return replace(self, draft=draft or "", draft_tokens=tokens if tokens is not None else DRAFT_TOKENS)


@dataclass(frozen=True)
class ChatInputs:
    """One turn: a message (and its images) for a conversation, asked with `settings`."""

    message: object
    conversation: Conversation = field(default_factory=Conversation)
    settings: ChatSettings = field(default_factory=lambda: ChatSettings(""))
    images: tuple[str, ...] = ()  # image files attached to this message (models that see: Qwen3.5, Qwen3-VL)
    after: str | None = None  # the message it follows (a ROOT or earlier id: an edit's branch); None: the conversation's end


@dataclass(frozen=True)
class ChatJob:
    request: Request
    before: Conversation  # the conversation as it was (given back when nothing was produced)
    conversation: Conversation  # with this message and its answer, which fills in as it streams
    answer_id: str
    dropped: int = 0  # oldest exchanges left out of the prompt to fit
    stripped_thoughts: int = 0  # earlier thoughts shown in the chat but not sent back (Qwen's multi-turn advice)
    image_tokens: int = 0  # what the answered message's images cost, in the model's own token side
    tools: dict = field(default_factory=dict)  # name -> tools.Tool the model may call; empty: a plain answer
    spec: ModelSpec | None = None  # the model answering (how it writes tool calls)

    @property
    def requests(self) -> list[Request]:
        return [self.request]


TOO_LONG_ADVICE = "Shorten the message, undo or clear earlier turns, or tick 'Trim oldest turns to fit'."


def paths_of(files: object) -> tuple[str, ...]:
    """File paths from what Gradio or the API gives for attached files (paths, file dicts or objects with `.name`)."""
    if not files:
        return ()
    paths = []
    for f in files if isinstance(files, (list, tuple)) else [files]:
        path = f.get("path") if isinstance(f, dict) else getattr(f, "name", f)
        if not isinstance(path, (str, Path)):
            raise TaskError("Attach images as files.", "images")
        paths.append(str(path))
    return tuple(paths)


def check_images(spec: ModelSpec, paths: tuple[str, ...], history_has_images: bool) -> tuple[dict, int]:
    """(min/max pixel bounds for every image in the conversation, what this message's images cost in tokens); refuses
    images for a model that reads text only, and an unreadable or oversized image, naming it."""
    if not paths and not history_has_images:
        return {}, 0
    if spec.family.vision is None or spec.adapter:  # a fine-tuned model runs as its text side (LoRA trained on text)
        where = "This message has" if paths else "This conversation has"
        raise TaskError(f"{where} images, and {spec.id} reads text only: pick a model that sees (Qwen3.5, Qwen3-VL), "
                        f"or {'remove the images' if paths else 'start a new conversation'}.", "images")
    if len(paths) > MAX_IMAGES:
        raise TaskError(f"At most {MAX_IMAGES} images in one message (you attached {len(paths)}).", "images")
    side = spec.family.vision.token_side
    bounds = {"min_pixels": 4 * side**2, "max_pixels": IMAGE_TOKENS * side**2}
    try:
        costs = [image_cost(check_image(path).image, bounds["min_pixels"], bounds["max_pixels"], side).tokens for path in paths]
    except UploadRejected as e:
        raise TaskError(str(e), "images") from None
    return bounds, sum(costs)


def check_documents(config: AppConfig, spec: ModelSpec, paths: tuple[str, ...], text: str) -> None:
    """Documents attached to a message go to the model whole: each must be readable and, with the message, within what
    one message may carry here; a longer one is sent to the Documents tab, which retrieves the parts that answer."""
    if not paths:
        return
    if len(paths) > config.settings.max_documents:
        raise TaskError(f"At most {config.settings.max_documents} documents in one message (you attached {len(paths)}).", "images")
    limit = min(config.settings.max_message_tokens, config.settings.max_input_tokens, spec.context_length - 1)
    try:
        documents = [read_cached(path, int(config.settings.max_document_mb * 2**20)) for path in paths]
    except UploadRejected as e:
        raise TaskError(str(e), "images") from None
    tokens = count_tokens(text) + sum(count_tokens(as_text(d)) for d in documents)
    if tokens > limit:
        names = ", ".join(d.name for d in documents)
        raise TaskError(f"{names} and your message come to {tokens:,} tokens; one chat message carries at most {limit:,} here. Ask about "
                        "long documents in the Documents tab: it puts in only the parts that answer, retrieved for each question.", "images")


def path_to(conversation: Conversation, after: str | None) -> list[Message]:
    """The conversation's messages up to and including `after` (None: all of them; ROOT: none)."""
    path = conversation.path()
    if after is None:
        return path
    ids = [m.id for m in path]
    if after and after not in ids:
        raise TaskError("That message is no longer in the conversation shown; pick it again.")
    return path[:ids.index(after) + 1] if after else []


def prepare(config: AppConfig, inputs: ChatInputs, user: str = "", require_message: bool = True) -> ChatJob:
    """The next turn: the conversation so far (answers without thinking), then the message (and its images) through the
    chat template; with no message, a new answer to the last person's message."""
    settings = inputs.settings
    text = inputs.message.strip() if isinstance(inputs.message, str) else ""
    if require_message and not text:
        attached = "documents" if all(map(is_document, inputs.images)) else "images"
        raise TaskError(f"Add a question about the {attached}." if inputs.images else "Type a message first.", "message")
    spec, before, template = resolve(config.registry, settings.model), path_to(inputs.conversation, inputs.after), load_template("chat")
    answered = Message.user(template.render_user(message=text), inputs.images) if text else next(
        (m for m in before[-1:] if m.role == "user"), None)
    attached = tuple(answered.files) if answered else ()
    images = tuple(f for f in attached if not is_document(f))
    check_documents(config, spec, tuple(f for f in attached if is_document(f)), answered.text if answered else "")
    bounds, image_tokens = check_images(spec, images, any(not is_document(f) for m in before for f in m.files))
    effort, keep = reasoning_switches(spec, settings)
    draft, draft_tokens = drafts.checked(config.registry, spec, settings.draft, settings.draft_tokens)
    history = model_messages(before, "", spec.family.thinking_tags, bounds, keep_reasoning=keep)
    dropped = 0
    if settings.trim_history and text:
        budget = config.settings.max_input_tokens - conversation_tokens(
            [{"role": "system", "content": settings.system_prompt}, {"role": "user", "content": answered.text}])
        history, dropped = trim_history(history, max(0, budget))
    messages = model_messages([], settings.system_prompt, spec.family.thinking_tags) + history
    if text:
        messages.append({"role": "user", "content": user_content(answered.text, answered.files, bounds)})
    if answered is not None:
        refuse_if_too_long(config, spec, messages, TOO_LONG_ADVICE, "message")
    think = spec.family.thinks(settings.thinking)
    chosen = chosen_tools(config, spec, settings.tools)
    request = Request(spec.id, messages, settings.sampling or spec.preset(think), think, settings.thinking_budget or None,
                      settings.precision, user, TOP_ALTERNATIVES if settings.alternatives else 0,
                      tools=tuple(tool.schema() for tool in chosen.values()), reasoning_effort=effort, keep_reasoning=keep,
                      draft=draft, draft_tokens=draft_tokens)
    conversation = inputs.conversation.copy()
    question = conversation.add(Message.user(text, inputs.images), before[-1].id if before else "") if text else answered
    answer = Message.assistant()
    answer.turn.images, answer.turn.image_tokens = (len(images), image_tokens) if image_tokens else (0, 0)
    if question is not None:
        conversation.add(answer, question.id)
    stripped = 0 if keep else sum(1 for m in before if m.turn is not None and m.turn.thinking)
    return ChatJob(request, inputs.conversation, conversation, answer.id, dropped, stripped, image_tokens, chosen, spec)


def reasoning_switches(spec: ModelSpec, settings: ChatSettings) -> tuple[str, bool]:
    """(reasoning effort, keep earlier reasoning) as `spec`'s family takes them: an effort it does not have is refused
    with its choices; keeping reasoning is asked of a family that has the switch only (elsewhere the box is hidden)."""
    try:
        effort = spec.family.reasoning_effort_of(settings.reasoning_effort)
    except ValueError as e:
        raise TaskError(str(e), "reasoning_effort") from None
    return effort, settings.keep_reasoning and spec.family.keeps_reasoning


def chosen_tools(config: AppConfig, spec: ModelSpec, names: tuple[str, ...]) -> dict:
    """The tools ticked for this answer, by name (the Tools tab's own offer), or a refusal naming what is wrong."""
    if not names:
        return {}
    if spec.family.tool_format is None:
        raise TaskError(f"{spec.id} does not call tools: untick the tools, or pick a Qwen3, Qwen3.5 or Qwen2.5 model.", "tools")
    offered = tools.available_tools(config)
    if unknown := [n for n in names if n not in offered]:
        raise TaskError(f"No tool named {', '.join(map(str, unknown))} here; tools: {', '.join(offered)}.", "tools")
    return {n: offered[n] for n in dict.fromkeys(names)}


def regenerate(conversation: Conversation, settings: ChatSettings) -> ChatInputs:
    """A new answer to the last person's message, beside the one it has (which stays, one arrow away)."""
    question = conversation.last_question()
    if question is None:
        raise TaskError("Nothing to retry yet.")
    return ChatInputs("", conversation, settings, after=question.id)


def edit(conversation: Conversation, message_id: str, text: object, settings: ChatSettings) -> ChatInputs:
    """An earlier message said differently: a new branch from there (the old one stays, one arrow away)."""
    message = conversation.messages.get(message_id)
    if message is None or message.role != "user":
        raise TaskError("Only your own messages can be edited.")
    if not isinstance(text, str) or not text.strip():
        raise TaskError("An edited message needs some text; to take a message back, use Undo.", "message")
    return ChatInputs(text, conversation, settings, tuple(message.files), after=message.parent)


def undo(conversation: Conversation) -> tuple[Conversation, str, tuple[str, ...]]:
    """(the conversation without its last exchange, that message, the images it had): to edit and send again."""
    question = conversation.last_question()
    if question is None:
        raise TaskError("Nothing to undo yet.")
    kept = conversation.copy()
    kept.remove(question.id)
    return kept, question.text, tuple(question.files)


@dataclass(frozen=True)
class ChatView:
    conversation: Conversation
    error: str | None = None
    produced_output: bool = False


def run(backend: Backend, job: ChatJob, stop: threading.Event | None = None) -> Iterator[ChatView]:
    """The conversation as the answer streams in; the last view carries any error. With tools, the answer is the tool
    loop's: its calls and results kept in the turn (`tool_calls`), its last step's words as the answer."""
    answer = job.conversation.messages[job.answer_id]
    if job.tools:
        yield from _run_with_tools(backend, job, answer, stop)
        return
    for state in stream_turns(backend, job.requests, stop):
        turn = state.turns[0]
        turn.images, turn.image_tokens, turn.request = answer.turn.images, answer.turn.image_tokens, job.request
        answer.turn = turn
        yield ChatView(job.conversation, turn.error, turn.produced_output)


def explain(backend: Backend, conversation: Conversation, stop: threading.Event | None = None) -> Iterator[ChatView]:
    """Why this token? for the answers shown without it: for each, one pass of the model that wrote it over the
    tokens it wrote (teacher forcing), with the request that asked for it, so each step is what recording while it
    generated would have given. An answer that cannot be scored gets a note instead."""
    for message in conversation.path():
        turn = message.turn
        if turn is None or turn.choices is not None or not turn.produced_output:
            continue
        turn.choices = explained(backend, turn, stop or threading.Event())
        yield ChatView(conversation, None, True)


def explained(backend: Backend, turn: AssistantTurn, cancel: threading.Event) -> TokenChoices:
    """`turn`'s token choices from one teacher-forced pass, with what it cost; or a note saying why there are none."""
    ids = turn.metrics.token_ids if turn.metrics else ()
    if turn.request is None or not ids or turn.tool_calls:
        why = ("a model on a server gives no token ids to score" if turn.metrics and not turn.metrics.engine else
               "it used tools (several requests)" if turn.tool_calls else "the request that made it was not kept (an opened or imported chat)")
        return TokenChoices((), f"This answer cannot be explained after the fact: {why}. Tick 🔎 before sending to record it.")
    start = time.perf_counter()
    request = replace(turn.request, alternatives=TOP_ALTERNATIVES, draft="", score=ids)
    for event in backend.stream(request, cancel):
        if isinstance(event, Error):
            return TokenChoices((), f"Could not score this answer: {event.message}")
        if isinstance(event, TokenChoices):
            return replace(event, note=f"Scored after the answer: one pass of {request.model_id} over its {len(ids)} tokens "
                                       f"({time.perf_counter() - start:.1f} s), as recording while it wrote would have given.")
    return TokenChoices((), "The model gave no token choices for this answer.")


def _run_with_tools(backend: Backend, job: ChatJob, answer: Message, stop: threading.Event | None) -> Iterator[ChatView]:
    loop = tools.ToolsJob(job.spec, job.request, job.tools, tools.DEFAULT_STEPS, [])
    for view in tools.run(backend, loop, stop):
        turn = view.steps[-1].turn
        turn.tool_calls = [tools.call_record(call, outcome) for step in view.steps for call, outcome in zip(step.calls, step.outcomes)]
        turn.thinking = "\n\n".join(step.turn.thinking for step in view.steps if step.turn.thinking)
        if view.done and view.note and not turn.error and turn.finish_reason != "cancelled":
            turn.error = view.note  # the step limit: said under what the model wrote
        answer.turn = turn
        yield ChatView(job.conversation, turn.error, turn.produced_output or bool(turn.tool_calls))
