"""A tiny demo model that calls a tool, then answers with its result: the whole agent loop, offline.

A scripted reply maps each token to the next, but a tool call repeats tokens (`", "`) and the answer after the
result must differ from the call before it, so this model is trained instead: a few dozen steps of next-token
training on exactly two turns of its family's real format (the tools in the system turn, the call; then the
result in a tool turn, the answer), until greedy decoding gives both word for word, and a little longer for a
margin. It answers that one question that way (with that one tool ticked and thinking off); anything else gets
noise, and the page says it is a demo.
"""

from __future__ import annotations

import torch
from transformers import PreTrainedTokenizerBase

from ...core.registry import Family
from ...toolcalls import ToolCall, write_call
from ...tools.builtin import builtin_tools

MAX_STEPS = 400
MARGIN_STEPS = 30  # more training once both turns come out right, so bf16 weights and another engine agree
LEARNING_RATE = 1e-2


def turns(family: Family, tok: PreTrainedTokenizerBase) -> list[tuple[list[int], list[int]]]:
    """The two (prompt ids, reply ids) the model learns, rendered by the family's own chat template."""
    script = family.demo.tool_script
    tools = [builtin_tools(allow_code=False)[script.tool].schema()]
    asked = [{"role": "user", "content": script.message}]
    call = ToolCall(script.tool, dict(script.arguments))
    answered = [*asked, {"role": "assistant", "content": "", "tool_calls": [{"id": "call_0_0", "type": "function",
                                                                            "function": {"name": call.name, "arguments": call.arguments}}]},
                {"role": "tool", "tool_call_id": "call_0_0", "name": call.name, "content": script.result}]
    pairs = []
    for messages, reply in ((asked, write_call(call, family.tool_format)), (answered, script.answer)):
        prompt = tok.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=True, **family.template_kwargs(False))
        pairs.append((tok(prompt, add_special_tokens=False).input_ids, tok(reply + tok.eos_token, add_special_tokens=False).input_ids))
    return pairs


def train(model, tok: PreTrainedTokenizerBase, family: Family) -> None:
    """Teach `model` the two turns (next-token loss on the replies only) until greedy decoding reproduces both."""
    pairs = turns(family, tok)
    inputs = [(torch.tensor([prompt + reply]), len(prompt), torch.tensor(reply)) for prompt, reply in pairs]
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
    model.train()
    right_since = None
    for step in range(MAX_STEPS):
        loss = 0
        for ids, start, reply in inputs:  # logits at the reply's positions only: the 152K-word output layer is the cost
            hidden = model.model(input_ids=ids).last_hidden_state[0, start - 1:-1]
            loss = loss + torch.nn.functional.cross_entropy(model.lm_head(hidden), reply)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if right_since is None and step % 10 == 9 and reproduces(model, pairs):
            right_since = step
        if right_since is not None and step - right_since >= MARGIN_STEPS:
            break
    model.eval()
    if not reproduces(model.to(torch.bfloat16), pairs):
        raise RuntimeError(f"The {family.label} tool-calling demo did not learn its two turns in {MAX_STEPS} steps.")
    model.to(torch.float32)


@torch.no_grad()
def reproduces(model, pairs: list[tuple[list[int], list[int]]]) -> bool:
    """Whether greedy decoding gives each reply word for word after its prompt."""
    was_training = model.training
    model.eval()
    right = all(model.generate(torch.tensor([prompt]), max_new_tokens=len(reply), do_sample=False)[0, len(prompt):].tolist() == reply
                for prompt, reply in pairs)
    model.train(was_training)
    return right
