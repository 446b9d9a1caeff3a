"""The reasoning switches of Qwen3.6 and Qwen3.8 (keep earlier reasoning: preserve_thinking; reasoning effort): from the
Chat tab's settings into the prompt, as the Inspector shows it, and to a server; refused where a family has none."""

import pytest

from qwen_playground.backends.openai_compat import OpenAICompatBackend
from qwen_playground.tasks import TaskError, chat
from qwen_playground.tasks.conversation import AssistantTurn, Conversation, Message
from qwen_playground.tasks.inspect import explain

THOUGHT = "The user greeted me; a greeting back is enough."


def conversation() -> Conversation:
    """One exchange whose answer had a thought, then the next question."""
    return Conversation.of([Message.user("Hello"), Message.assistant(AssistantTurn(thinking=THOUGHT, answer="Hello to you!"))])


def prompt(config, model: str, settings: chat.ChatSettings, message: str = "And now?") -> tuple[chat.ChatJob, str, str]:
    """(the job, the templated prompt, the Inspector's notes) for the next turn."""
    job = chat.prepare(config, chat.ChatInputs(message, conversation(), settings))
    shown = explain(config.registry.get(model), job.request, config.settings.cache_dir, job.stripped_thoughts)
    return job, shown.counts["text"], shown.notes


@pytest.mark.parametrize("model", ["demo-qwen3.6-moe", "demo-qwen3.8"])
def test_keeping_earlier_reasoning_puts_the_thought_back_into_the_prompt(demo_config, model):
    base = chat.ChatSettings(model, thinking=True)
    job, text, notes = prompt(demo_config, model, base)
    assert THOUGHT not in text and job.stripped_thoughts == 1 and "`preserve_thinking=true`" not in notes
    job, text, notes = prompt(demo_config, model, base.with_reasoning(keep=True))
    assert f"<think>\n{THOUGHT}\n</think>\n\nHello to you!" in text and job.stripped_thoughts == 0
    assert job.request.keep_reasoning and "`preserve_thinking=true`" in notes and "1 earlier thought goes back" in notes


def test_keeping_reasoning_is_not_sent_to_a_family_without_the_switch(demo_config):
    job, text, notes = prompt(demo_config, "demo-qwen3.5", chat.ChatSettings("demo-qwen3.5", thinking=True).with_reasoning(keep=True))
    assert THOUGHT not in text and not job.request.keep_reasoning and "Reasoning switches" not in notes


def test_reasoning_effort_reaches_the_prompt_when_the_model_thinks(demo_config):
    settings = chat.ChatSettings("demo-qwen3.8", thinking=True)
    _, default, notes = prompt(demo_config, "demo-qwen3.8", settings)
    assert "Reasoning effort: xhigh" in default and "`reasoning_effort=xhigh`" in notes  # the family's default, said
    job, low, notes = prompt(demo_config, "demo-qwen3.8", settings.with_reasoning("low"))
    assert job.request.reasoning_effort == "low" and "Reasoning effort: low<|im_end|>" in low and "`reasoning_effort=low`" in notes
    assert "written as a system line by this app" in notes  # the bundled template's line is ours, and the Inspector says so
    _, off, _ = prompt(demo_config, "demo-qwen3.8", chat.ChatSettings("demo-qwen3.8", thinking=False).with_reasoning("low"))
    assert "Reasoning effort" not in off  # without thinking there is no reasoning to pace


def test_an_effort_the_family_does_not_have_is_refused_with_its_choices(demo_config):
    with pytest.raises(TaskError, match="Qwen3.8 takes reasoning effort xhigh, medium, low, not 'extreme'"):
        chat.prepare(demo_config, chat.ChatInputs("Hi", settings=chat.ChatSettings("demo-qwen3.8").with_reasoning("extreme")))
    with pytest.raises(TaskError, match="Qwen3.5 takes reasoning effort none"):
        chat.prepare(demo_config, chat.ChatInputs("Hi", settings=chat.ChatSettings("demo-qwen3.5").with_reasoning("low")))


def test_a_server_gets_the_switches_and_the_kept_thought(demo_config):
    """vLLM and SGLang take the template's arguments in chat_template_kwargs, and an answer's thought as reasoning_content."""
    registry = demo_config.registry
    spec = registry.get("qwen3.8-27b").model_copy(update={"id": "served-3.8", "endpoint": "local", "remote_model": "Qwen/Qwen3.8-27B",
                                                          "hub_id": None})
    from qwen_playground.core.registry import Endpoint

    backend = OpenAICompatBackend(Endpoint(id="local", base_url="http://127.0.0.1:9/v1"), registry)
    job = chat.prepare(demo_config, chat.ChatInputs("And now?", conversation(),
                                                    chat.ChatSettings("demo-qwen3.8", thinking=True).with_reasoning("medium", True)))
    sent = backend.request_kwargs(spec, job.request)
    assert sent["extra_body"]["chat_template_kwargs"] == {"enable_thinking": True, "reasoning_effort": "medium", "preserve_thinking": True}
    assert sent["messages"][1] == {"role": "assistant", "content": "Hello to you!", "reasoning_content": THOUGHT}


def test_the_chat_api_takes_the_switches_and_the_inspector_shows_them(app):
    """Through the running app: /chat with keep-reasoning on Qwen3.8 answers; /inspect of the next turn shows the kept
    thought and the effort; an effort Qwen3.5 lacks is a refusal naming its choices."""
    client, _ = app
    history, _ = client.predict("Hi", [], "demo-qwen3.8", "", True, tools=[], reasoning_effort="medium", keep_reasoning=True, api_name="/chat")
    assert history[-1]["role"] == "assistant"
    pieces, notes, counts = client.predict("Next?", history, "demo-qwen3.8", "", True, None, [], "medium", True, api_name="/inspect")
    assert "Reasoning effort: medium" in counts["text"] and "`preserve_thinking=true`" in notes
    assert "Demo mode: tiny random parameters asked to reason hard" in counts["text"]  # the first answer's thought, kept
    with pytest.raises(Exception, match="takes reasoning effort none"):
        client.predict("Hi", [], "demo-qwen3.5", "", True, reasoning_effort="low", api_name="/chat")
