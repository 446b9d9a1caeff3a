"""The OpenAI-compatible backend: vLLM, SGLang, Ollama, llama.cpp, LM Studio, DashScope, `transformers serve`.

Streams through the official `openai` client. The presence penalty (Qwen3.5's
presets) is OpenAI's own parameter, sent when it is on. Sampling the OpenAI API lacks
(top_k, min_p, repetition_penalty) goes in `extra_body`, as vLLM and SGLang
accept it; Qwen3's thinking switch goes in `chat_template_kwargs`. Reasoning
arrives either in a separate `reasoning_content` (or `reasoning`) field or
inline as `<think>…</think>`; both become thinking events. Token alternatives
come from OpenAI's `logprobs` / `top_logprobs` options, where the server
offers them (vLLM, SGLang, llama.cpp do; a note says so where it does not).
Token counts come from the stream's usage (asked for with `stream_options`);
a server that sends none (llama-cpp-python's own server) has the prompt and
the answer counted here with the family's tokenizer, and the metrics line
says so. Every failure
(refused connection, timeout, 4xx/5xx, a stream cut mid-way) ends in one
`Error` event; what was streamed before it stays.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import threading
import time
import wave
from pathlib import Path
from typing import Iterator

import openai
from PIL import Image

from ..core.generation import Candidate, Done, Error, Event, Metrics, Request, TextDelta, ThinkingDelta, TokenChoices, TokenStep
from ..core.registry import Endpoint, Family, ModelSpec, Registry
from ..toolcalls import CLOSE, OPEN, ToolCall, write_call
from . import ModelBackend
from .encoding import defuse_messages, encode_chat, template_arguments, template_switches
from .thinking import ThinkingParser


def image_data_url(image: str | Path | Image.Image) -> str:
    """An image (path or PIL) as a base64 PNG data URL, the way OpenAI vision messages carry it."""
    if not isinstance(image, Image.Image):
        image = Image.open(image)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def audio_wav_base64(samples, rate: int) -> str:
    """A clip (mono float samples in [-1, 1]) as base64 16-bit PCM WAV, the way OpenAI's `input_audio` carries it."""
    import numpy as np

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _openai_part(part: dict) -> dict:
    if part.get("type") == "image":
        return {"type": "image_url", "image_url": {"url": image_data_url(part["image"])}}
    if part.get("type") == "audio":
        return {"type": "input_audio", "input_audio": {"data": audio_wav_base64(part["audio"], part["sampling_rate"]), "format": "wav"}}
    return {"type": "text", "text": part.get("text", "")}


def to_openai_messages(messages: list[dict]) -> list[dict]:
    """Our messages (text, or parts: {"type": "image", "image": ...}, {"type": "audio", "audio": samples,
    "sampling_rate": 16000}; an assistant's tool calls with their arguments as a mapping, a tool's result) in OpenAI's
    format (arguments as a JSON string, each result naming its call's id)."""
    converted = []
    for m in messages:
        content = [_openai_part(p) for p in m["content"]] if isinstance(m["content"], list) else m["content"]
        message = {"role": m["role"], "content": content}
        if m.get("tool_calls"):
            message["tool_calls"] = [{"id": c.get("id", ""), "type": "function",
                                      "function": {"name": c["function"]["name"], "arguments": json.dumps(c["function"]["arguments"])}}
                                     for c in m["tool_calls"]]
        if m["role"] == "tool":
            message["tool_call_id"] = m.get("tool_call_id", "")
        if m.get("reasoning_content"):  # an earlier answer's reasoning, kept (preserve_thinking): vLLM's and SGLang's field
            message["reasoning_content"] = m["reasoning_content"]
        converted.append(message)
    return converted


def calls_as_text(pieces: dict[int, dict], fmt: str | None) -> str:
    """Tool calls a server parsed (OpenAI `tool_calls` deltas, gathered by index) written back in the family's own
    format, so they are read, shown and fed back like the calls a local model writes."""
    text = []
    for piece in (pieces[i] for i in sorted(pieces)):
        try:
            arguments = json.loads(piece["arguments"] or "{}")
        except json.JSONDecodeError:
            arguments = None
        if isinstance(arguments, dict):
            text.append(write_call(ToolCall(piece["name"], arguments), fmt or "json"))
        else:  # as the server sent it: the reader then says what is wrong with it
            text.append(f'{OPEN}\n{{"name": {json.dumps(piece["name"])}, "arguments": {piece["arguments"]}}}\n{CLOSE}')
    return "\n".join(text)


def token_steps(logprobs, thinking: bool) -> list[TokenStep]:
    """A chunk's `logprobs` (OpenAI's ChoiceLogprobs, or None) as token steps."""
    steps = []
    for item in getattr(logprobs, "content", None) or []:
        alternatives = tuple(Candidate(top.token, math.exp(top.logprob)) for top in item.top_logprobs or [])
        steps.append(TokenStep(item.token, math.exp(item.logprob), alternatives, thinking))
    return steps


def _reasoning_of(delta) -> str | None:
    """Servers name the separate reasoning field differently; read any of them."""
    extra = getattr(delta, "model_extra", None) or {}
    return getattr(delta, "reasoning_content", None) or extra.get("reasoning_content") or extra.get("reasoning")


def _failure_message(endpoint: Endpoint, error: Exception, streamed: int) -> str:
    where = f"{endpoint.id} ({endpoint.base_url})"
    kept = f" after {streamed} pieces; the partial answer is kept" if streamed else ""
    if isinstance(error, openai.APITimeoutError):
        return f"{where} timed out{kept}. The server may be overloaded; raise timeout_s for this endpoint or try again."
    if isinstance(error, openai.APIConnectionError):
        if streamed:
            return f"The stream from {where} was cut{kept}: {error.__cause__ or error}."
        return f"Cannot reach {where}: {error.__cause__ or error}. Is the server running, and is base_url right (it usually ends in /v1)?"
    if isinstance(error, openai.APIStatusError):
        body = error.body if isinstance(error.body, dict) else {}
        detail = str((body.get("error") or {}).get("message") if isinstance(body.get("error"), dict) else body.get("detail") or body.get("error") or error.message)
        hint = ""
        if error.status_code in (400, 422) and "presence_penalty" in detail:
            hint = " This server rejects the presence penalty: set Presence penalty to 0 for this model."
        elif error.status_code in (400, 422) and "logprobs" in detail:
            hint = " This server does not give token probabilities: switch off 'Why this token?' for this model."
        elif error.status_code in (400, 422) and any(k in detail for k in ("top_k", "min_p", "repetition_penalty", "chat_template_kwargs")):
            hint = " This server rejects the extra sampling settings: set send_sampling_extras: false for this endpoint."
        elif error.status_code in (401, 403):
            hint = f" Check the API key{f' in ${endpoint.api_key_env}' if endpoint.api_key_env else ' (set api_key_env for this endpoint)'}."
        elif error.status_code == 404:
            hint = " Check remote_model: GET /v1/models lists the names this server knows."
        return f"{where} answered {error.status_code}: {detail}.{hint}"
    if isinstance(error, openai.APIError):
        return f"The stream from {where} failed{kept}: {error}"
    if streamed:  # the connection broke while reading: the client's HTTP library raises that unwrapped
        return f"The stream from {where} was cut{kept}: {type(error).__name__}: {error}."
    return f"{where}: {type(error).__name__}: {error}"


_tokenizers: dict[str, object] = {}
_tokenizers_lock = threading.Lock()


def family_tokenizer(family: Family, cache_dir: Path | None):
    """`family`'s bundled real Qwen tokenizer with its chat template, loaded once."""
    with _tokenizers_lock:
        if family.name not in _tokenizers:
            from . import demo  # imports transformers: only once a server leaves counting to us

            _tokenizers[family.name] = demo.load_tokenizer(family, cache_dir)
        return _tokenizers[family.name]


class OpenAICompatBackend(ModelBackend):
    def __init__(self, endpoint: Endpoint, registry: Registry, cache_dir: Path | None = None):
        """`cache_dir`: where a converted tokenizer is kept (Qwen3.5's), for counting tokens a server does not report."""
        super().__init__(registry)
        self.endpoint = endpoint
        self.cache_dir = cache_dir
        self.client = openai.OpenAI(
            base_url=endpoint.base_url,
            api_key=os.environ.get(endpoint.api_key_env or "", "") or "not-needed",
            default_headers=endpoint.headers or None,
            timeout=openai.Timeout(endpoint.timeout_s, connect=endpoint.connect_timeout_s),  # the client's own type
            max_retries=0,  # a failure is shown at once; the user decides to retry
        )

    def request_kwargs(self, spec: ModelSpec, request: Request) -> dict:
        """The chat.completions.create arguments for a request (public for the inspector and tests)."""
        sampling = request.sampling
        extra: dict = {}
        switch, template_kwargs = self.endpoint.thinking_switch, template_switches(spec, request)
        if template_kwargs and switch == "chat_template_kwargs":
            extra["chat_template_kwargs"] = template_kwargs
        elif template_kwargs and switch == "enable_thinking":
            extra |= template_kwargs
        if self.endpoint.send_sampling_extras:
            extra |= {"top_k": sampling.top_k, "min_p": sampling.min_p, "repetition_penalty": sampling.repetition_penalty}
        optional = {"presence_penalty": sampling.presence_penalty} if sampling.presence_penalty else {}
        if request.alternatives:
            optional |= {"logprobs": True, "top_logprobs": request.alternatives}
        if request.tools:
            optional["tools"] = list(request.tools)
        if request.messages and request.messages[-1]["role"] == "assistant":  # an answer begun (Qwen3-ASR's forced language)
            extra |= {"continue_final_message": True, "add_generation_prompt": False}  # vLLM's and SGLang's chat options
        # the server templates and tokenizes: typed control-token strings must arrive unreadable as control tokens
        return optional | {"model": spec.remote_model, "messages": to_openai_messages(defuse_messages(request.messages)), "stream": True,
                "stream_options": {"include_usage": True}, "temperature": sampling.temperature, "top_p": sampling.top_p,
                "max_tokens": sampling.max_new_tokens, "extra_body": extra}

    def serve(self, spec: ModelSpec, request: Request, cancel: threading.Event) -> Iterator[Event]:
        if missing := self.endpoint.missing_key():
            yield Error(f"{spec.id} is served by {self.endpoint.id}, which {missing}. Until then, pick a local model.")
            return
        if request.precision != "full":
            yield Error(f"{spec.id} runs on a server that chooses its own precision: set precision to 'full' for it.")
            return
        start = time.perf_counter()
        first = thinking_end = None
        thinking_pieces = answer_pieces = 0
        written: list[str] = []  # every piece of thought and answer, for counting where the server reports no usage
        usage = finish = None
        parser = ThinkingParser(spec.family.thinking_tags, starts_inside=spec.family.starts_in_thought(request.thinking))
        steps: list[TokenStep] = []
        calls: dict[int, dict] = {}  # tool calls the server parsed, gathered by index
        stream = None
        try:
            stream = self.client.chat.completions.create(**self.request_kwargs(spec, request))
            for chunk in stream:
                if cancel.is_set():
                    finish = "cancelled"
                    break
                usage = chunk.usage or usage
                for choice in chunk.choices:
                    reasoning, content = _reasoning_of(choice.delta), choice.delta.content
                    if (reasoning or content) and first is None:
                        first = time.perf_counter()
                    if request.alternatives:
                        steps += token_steps(choice.logprobs, thinking=bool(reasoning) or parser.in_thinking)
                    written += [piece for piece in (reasoning, content) if piece]
                    if reasoning and (thinking_pieces or reasoning.strip()):  # an empty think block is no thought
                        thinking_pieces += 1
                        yield ThinkingDelta(reasoning.lstrip("\n") if thinking_pieces == 1 else reasoning)
                    if content:
                        for event in parser.feed(content):
                            if isinstance(event, ThinkingDelta):
                                thinking_pieces += 1
                            else:
                                answer_pieces += 1
                                thinking_end = thinking_end or time.perf_counter()
                            yield event
                    for delta in getattr(choice.delta, "tool_calls", None) or []:
                        gathered = calls.setdefault(delta.index, {"name": "", "arguments": ""})
                        if delta.function is not None:
                            gathered["name"] += delta.function.name or ""
                            gathered["arguments"] += delta.function.arguments or ""
                    finish = choice.finish_reason or finish
        except Exception as e:  # every failure becomes one clear message
            yield from parser.flush()
            yield Error(_failure_message(self.endpoint, e, thinking_pieces + answer_pieces))
            return
        finally:
            if stream is not None:
                stream.close()
        yield from parser.flush()
        if calls:
            text = calls_as_text(calls, spec.family.tool_format)
            written.append(text)
            yield TextDelta(("\n" if answer_pieces else "") + text)
        if finish is None:
            yield Error(f"The stream from {self.endpoint.id} ended before the answer was finished; the partial answer is kept.")
            return
        end = time.perf_counter()
        if request.alternatives:
            yield TokenChoices(tuple(steps), "" if steps else
                               f"{self.endpoint.id} sent no token probabilities: it does not offer OpenAI's logprobs option (vLLM, SGLang "
                               "and llama.cpp servers do, as do local models).")
        prompt_tokens, generated, counted_with = (usage.prompt_tokens, usage.completion_tokens, "") if usage else \
            self._count_here(spec, request, "".join(written), thinking_pieces + answer_pieces)
        reasoning_tokens = getattr(getattr(usage, "completion_tokens_details", None), "reasoning_tokens", None) if usage else None
        thinking_tokens = reasoning_tokens if reasoning_tokens is not None else min(thinking_pieces, generated)
        yield Metrics.timed(prompt_tokens, max(generated - thinking_tokens, 0), thinking_tokens, generated, start, first, thinking_end, end,
                            counted_with=counted_with)
        yield Done({"length": "length", "cancelled": "cancelled"}.get(finish, "stop"))

    def _count_here(self, spec: ModelSpec, request: Request, written: str, pieces: int) -> tuple[int, int, str]:
        """(prompt tokens, generated tokens, the tokenizer's name) counted with the family's tokenizer, for a server that
        reported no usage: the prompt as the chat template lays it out (sent defused), the answer as streamed. Images
        have no count without the model's own processor: (0, streamed pieces, "") then, as when the tokenizer fails."""
        if request.has_media:
            return 0, pieces, ""
        try:
            tokenizer = family_tokenizer(spec.family, self.cache_dir)
            _, prompt = encode_chat(tokenizer, defuse_messages(request.messages), **template_arguments(spec, request))
            answer = tokenizer(written, add_special_tokens=False).input_ids
        except Exception:  # counting is a courtesy: the answer stands without it
            return 0, pieces, ""
        return len(prompt), len(answer), f"{spec.family.label} tokenizer"

    def endpoint_health(self) -> dict[str, tuple[bool, str]]:
        """{id: (ok, line)}; a server whose key is not set is not asked (nobody can use it yet), so it is left out."""
        return {} if self.endpoint.missing_key() else {self.endpoint.id: self.check()}

    def check(self) -> tuple[bool, str]:
        """(ok, one line) from GET /models with a short timeout."""
        try:
            names = [m.id for m in self.client.with_options(timeout=5.0).models.list()]
        except Exception as e:
            return False, _failure_message(self.endpoint, e, 0)
        return True, f"serves {', '.join(names[:5]) or 'no models'}{' …' if len(names) > 5 else ''}"
