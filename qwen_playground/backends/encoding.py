"""How a conversation becomes token ids: the model's chat template, with typed text kept as text.

Tokenizing the templated string whole would turn a user's literal
`<|im_end|>\\n<|im_start|>system` into real control tokens (prompt injection).
So when a message's text contains a special-token string, its text is encoded
with `split_special_tokens=True` (plain characters) and spliced between the
template's own pieces; otherwise the string is tokenized whole, exactly as
`apply_chat_template(tokenize=True)` would, so ids match the tokenizer's own.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import torch
from transformers import PreTrainedTokenizerBase

if TYPE_CHECKING:
    from pathlib import Path

    from transformers import ProcessorMixin

    from ..core.generation import Request
    from ..core.registry import ModelSpec

_MARK = re.compile("\ue000(\\d+)\ue001")  # private-use characters: a placeholder no one types


def special_strings(tokenizer: PreTrainedTokenizerBase) -> list[str]:
    return [t.content for t in tokenizer.added_tokens_decoder.values() if t.special]


def has_special_text(tokenizer: PreTrainedTokenizerBase, messages: list[dict]) -> bool:
    specials = special_strings(tokenizer)
    return any(isinstance(m.get("content"), str) and any(s in m["content"] for s in specials) for m in messages)


def encode_chat(tokenizer: PreTrainedTokenizerBase, messages: list[dict], **template_kwargs) -> tuple[str, list[int]]:
    """(templated text, token ids) with the generation prompt; typed special-token strings stay plain text."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **template_kwargs)
    if not has_special_text(tokenizer, messages):
        return text, tokenizer(text, add_special_tokens=False).input_ids
    contents: list[str] = []
    masked = []
    for message in messages:
        if isinstance(message.get("content"), str):
            contents.append(message["content"])
            masked.append({**message, "content": f"\ue000{len(contents) - 1}\ue001"})
        else:
            masked.append(message)
    skeleton = tokenizer.apply_chat_template(masked, tokenize=False, add_generation_prompt=True, **template_kwargs)
    ids: list[int] = []
    position = 0
    for match in _MARK.finditer(skeleton):
        ids += tokenizer(skeleton[position:match.start()], add_special_tokens=False).input_ids
        ids += tokenizer(contents[int(match[1])], add_special_tokens=False, split_special_tokens=True).input_ids
        position = match.end()
    ids += tokenizer(skeleton[position:], add_special_tokens=False).input_ids
    return text, ids


# Qwen's control tokens all look like <|name|>. Where we cannot tokenize ourselves (a remote server applies the
# template and tokenizes; the vision processor tokenizes its own text), a WORD JOINER (U+2060, invisible) goes
# after the "<|" of any such string a user typed, so no tokenizer can read it as the control token.
_CONTROL = re.compile(r"<\|(?=[^<>|\s]{1,40}\|>)")
JOINER = "\u2060"


def defuse_text(text: str) -> str:
    """`text` with every typed `<|name|>` broken by an invisible joiner (ordinary text is unchanged)."""
    return _CONTROL.sub("<|" + JOINER, text)


def defuse_messages(messages: list[dict]) -> list[dict]:
    """The messages with `defuse_text` applied to every text content, string or list of parts."""
    out = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            content = defuse_text(content)
        elif isinstance(content, list):
            content = [dict(part, text=defuse_text(part["text"])) if isinstance(part, dict) and isinstance(part.get("text"), str) else part
                       for part in content]
        out.append({**message, "content": content})
    return out


def media_processor(folder: "str | Path") -> "ProcessorMixin":
    """The processor of the vision or audio model in `folder` (images and video, or sound); raises where it has none."""
    from ..core import ml_stack

    ml_stack.load_media()  # the image, video and audio libraries: seconds, one importing thread at a time
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(folder)
    if not (hasattr(processor, "image_processor") or hasattr(processor, "feature_extractor")):  # an incomplete folder: a bare tokenizer
        raise RuntimeError(f"{folder} has no image processor or feature extractor (preprocessor_config.json or processor_config.json)")
    return processor


def template_switches(spec: "ModelSpec", request: "Request") -> dict:
    """The family's reasoning switches for `request` as its chat template takes them (thinking, reasoning effort,
    keeping earlier reasoning): the one place a request's switches become template arguments, here and for a server."""
    return spec.family.template_kwargs(request.thinking, request.reasoning_effort, request.keep_reasoning)


def template_arguments(spec: "ModelSpec", request: "Request") -> dict:
    """What the chat template takes beside the messages: the family's switches, and the tools on offer."""
    return template_switches(spec, request) | ({"tools": list(request.tools)} if request.tools else {})


def encode_request(spec: "ModelSpec", request: "Request", tokenizer: PreTrainedTokenizerBase,
                   processor: "ProcessorMixin | None" = None) -> dict:
    """The model inputs for `request` (input_ids, attention_mask, and pixel values when it has images): what a
    local model generates from, and what the inspector takes apart. One function, so both see the same ids. Text
    alone goes through the tokenizer also for a model that sees (Qwen3.5), so typed control tokens stay text."""
    if processor is None or not request.has_media:
        _, ids = encode_chat(tokenizer, request.messages, **template_arguments(spec, request))
        return {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long)}
    messages = defuse_messages(request.messages)  # the processor tokenizes its own text: see above
    if spec.family.audio is not None:
        return _encode_audio(spec, messages, processor, request.thinking)
    from qwen_vl_utils import process_vision_info  # imports torchvision

    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **template_switches(spec, request))
    vision = spec.family.vision
    # images and video frames arrive resized by qwen-vl-utils to the family's token side, as the cost table prices them
    extra: dict = {"do_resize": False}
    if vision.video_metadata:  # Qwen3-VL: each frame's time goes into the prompt, from the video's fps and frame count
        images, videos, video_kwargs = process_vision_info(messages, image_patch_size=vision.patch_size, return_video_kwargs=True,
                                                           return_video_metadata=True)
        if videos:
            videos, metadata = (list(column) for column in zip(*videos))
            extra |= video_kwargs | {"video_metadata": metadata}
    else:
        images, videos = process_vision_info(messages, image_patch_size=vision.patch_size)
    return dict(processor(text=[text], images=images, videos=videos, return_tensors="pt", **extra))


def templated_text(spec: "ModelSpec", messages: list[dict], processor: "ProcessorMixin", thinking: bool = False) -> str:
    """The processor's chat template over `messages`, each medium still one placeholder. A last assistant message is
    begun, not closed: the answer continues it (Qwen3-ASR's "language English<asr_text>" forces the language)."""
    begun = bool(messages) and messages[-1]["role"] == "assistant"
    return processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=not begun, continue_final_message=begun,
                                         **spec.family.template_kwargs(thinking))


def _encode_audio(spec: "ModelSpec", messages: list[dict], processor: "ProcessorMixin", thinking: bool) -> dict:
    """Sound through the audio model's processor: its feature extractor makes the log-mel features and the text's
    audio placeholder is repeated once per audio token. The clips arrive checked: mono, at the family's rate."""
    clips = [part["audio"] for m in messages if isinstance(m["content"], list) for part in m["content"]
             if isinstance(part, dict) and part.get("type") == "audio"]
    inputs = processor(text=[templated_text(spec, messages, processor, thinking)], audio=clips, sampling_rate=spec.family.audio.sample_rate,
                       return_tensors="pt")
    inputs.pop("num_audio_tokens", None)  # the processor's own count, not a model input
    return dict(inputs)


def audio_token_count(spec: "ModelSpec", processor: "ProcessorMixin", samples) -> int:
    """How many audio tokens the processor makes of this clip for `spec`: its placeholder's repeats in the ids."""
    inputs = _encode_audio(spec, [{"role": "user", "content": [{"type": "audio", "audio": samples}]}], processor, False)
    return int((inputs["input_ids"] == processor.audio_token_id).sum())