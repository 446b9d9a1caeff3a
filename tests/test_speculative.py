"""Speculative decoding: guesses checked in one pass, greedy output unchanged, on both engines, with several users."""

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict

import pytest

from qwen_playground.backends.local import LLAMA_CPP, CacheKey, LocalBackend
from qwen_playground.backends.speculative import Speculation, lookup_draft, verify
from qwen_playground.core.config import load_config
from qwen_playground.core.generation import PROMPT_LOOKUP, Done, Drafts, Error, Metrics, Request, SamplingParams, TextDelta, TokenChoices

GREEDY = SamplingParams(temperature=0, max_new_tokens=48)
# the demo replies' own words: prompt lookup finds them in the prompt
PROMPT = [{"role": "user", "content": "Say: Hello from a little demo network! Install real weights for useful answers. "
                                      "Demo mode: tiny random parameters, so this thought is scripted."}]
CASES = [("demo-qwen3", PROMPT_LOOKUP), ("demo-qwen3", "demo-qwen3-thinking-2507"), ("demo-qwen3", "demo-qwen3-tools"),
         ("demo-qwen3.5", PROMPT_LOOKUP), ("demo-qwen3.5", "demo-qwen3.8")]


@pytest.fixture(scope="module", params=["transformers", LLAMA_CPP])
def engine(request, cache_dir, config_file) -> LocalBackend:
    config = load_config(config_file, demo=True, cache_dir=cache_dir, max_input_tokens=512, engine=request.param,
                         llama_cpp_hybrid_drafts=True)
    return LocalBackend(config.registry, config.settings)


def answer(backend, model, draft="", sampling=GREEDY, cancel=None, **fields) -> tuple[list, Metrics | None]:
    events = list(backend.stream(Request(model, PROMPT, sampling, thinking=True, draft=draft, **fields), cancel or threading.Event()))
    assert not [e for e in events if isinstance(e, Error)], events
    return events, next((e for e in events if isinstance(e, Metrics)), None)


def test_prompt_lookup_copies_what_followed_the_last_match():
    assert lookup_draft([1, 2, 3, 4, 5, 9, 2, 3], 3) == [4, 5, 9]  # "2 3" was followed by 4 5 9
    assert lookup_draft([1, 2, 3, 4, 2, 3, 7, 3], 2) == [7, 3]  # the most recent earlier match wins, one token matched
    assert lookup_draft([1, 2, 3], 4) == []
    assert lookup_draft([5, 5], 4) == [5]


def test_verify_keeps_guesses_while_the_model_chose_them():
    model = iter([7, 8, 1, 2])
    assert verify([7, 8, 9], lambda i: next(model), lambda t: False) == ([7, 8, 1], 2)
    all_right = iter([7, 8, 9, 4])
    assert verify([7, 8, 9], lambda i: next(all_right), lambda t: False) == ([7, 8, 9, 4], 3)  # and one more of its own
    ending = iter([7, 0, 9])
    assert verify([7, 0, 9], lambda i: next(ending), lambda t: t == 0) == ([7, 0], 2)  # an end-of-turn guess ends it
    assert verify([], lambda i: 5, lambda t: False) == ([5], 0)


def test_guesses_that_keep_failing_are_made_less_often():
    speculation = Speculation(PROMPT_LOOKUP, 4)
    assert speculation.wanted(10) == 4 and speculation.wanted(2) == 2
    for _ in range(3):
        speculation.record(speculation.wanted(10), 1, 0)
    assert speculation.current == 0
    tries = [speculation.wanted(10) for _ in range(16)]
    assert tries.count(1) == 2 and tries.count(0) == 14  # one guess every 8 passes
    speculation.record(1, 2, 1)
    assert speculation.wanted(10) == 2  # kept: back up
    assert Speculation.scoring((1, 2, 3)).wanted(2) == 2 and Speculation.scoring(tuple(range(500))).wanted(499) == 128  # forced: 128 a pass


def test_the_account_adds_up():
    speculation = Speculation(PROMPT_LOOKUP, 4)
    speculation.record(0, 1, 0)
    speculation.record(4, 3, 2)
    speculation.record(4, 5, 4)
    assert (speculation.drafted, speculation.accepted, speculation.passes) == (8, 6, 3)
    assert speculation.from_draft == [False, True, True, False, True, True, True, True, False]


@pytest.mark.parametrize("model,draft", CASES)
def test_greedy_output_with_drafts_equals_without_token_for_token(engine, model, draft):
    _, plain = answer(engine, model)
    events, drafted = answer(engine, model, draft)
    assert drafted.token_ids == plain.token_ids and len(plain.token_ids) > 20
    drafts = drafted.drafts
    assert drafts.method == draft and not drafts.note, drafts
    assert drafts.accepted + drafts.rejected == drafts.drafted and 0 <= drafts.accepted <= drafts.drafted and drafts.drafted > 0
    assert drafts.accepted > 0 or draft == "demo-qwen3-tools"  # its script is another: it guesses wrong, so it guesses less
    assert sum(flag for _, flag in drafts.tokens) == drafts.accepted  # every kept guess is a token of the answer
    assert len(drafts.tokens) == len(drafted.token_ids)
    assert drafts.accepted + drafts.passes - 1 <= len(drafts.tokens) <= drafts.accepted + drafts.passes  # each pass: its kept guesses and one
    assert "".join(text for text, _ in drafts.tokens).endswith("<|im_end|>")
    assert drafts.plain_tokens_per_s == plain.tokens_per_s  # the speed-up's base: the same model without drafts
    assert "accepted" in drafted.summary() and "tokens per pass" in drafted.summary()


def test_several_users_at_once_each_get_their_greedy_answer(engine):
    requests = [("demo-qwen3", ""), *CASES[:3], ("demo-qwen3", PROMPT_LOOKUP), ("demo-qwen3.5", "")]
    alone = {model: answer(engine, model)[1].token_ids for model, _ in requests}
    with ThreadPoolExecutor(len(requests)) as pool:
        together = list(pool.map(lambda case: answer(engine, *case)[1], requests))
    for (model, draft), metrics in zip(requests, together):
        assert metrics.token_ids == alone[model], (model, draft)
    if engine.llama_cpp_runs:  # inside one continuous batch, its guesses counted for the Monitor
        state = engine.cache.get(CacheKey("demo-qwen3", "full", LLAMA_CPP), 0, None).runner.state()
        assert state["peak_busy"] >= 2 and 0 < state["guesses_kept"] <= state["guessed"]


def test_stop_mid_draft_keeps_what_was_accepted(engine):
    _, full = answer(engine, "demo-qwen3", PROMPT_LOOKUP)
    cancel = threading.Event()
    events = []
    for event in engine.stream(Request("demo-qwen3", PROMPT, GREEDY, thinking=True, draft=PROMPT_LOOKUP), cancel):
        events.append(event)
        if isinstance(event, TextDelta):
            cancel.set()
    metrics = next(e for e in events if isinstance(e, Metrics))
    assert events[-1] == Done("cancelled")
    assert 0 < len(metrics.token_ids) < len(full.token_ids) and full.token_ids[:len(metrics.token_ids)] == metrics.token_ids
    assert len(metrics.drafts.tokens) == len(metrics.token_ids)


def test_sampling_with_drafts_answers_and_accounts(engine):
    sampling = SamplingParams(temperature=0.7, top_p=0.8, top_k=20, max_new_tokens=40)
    _, metrics = answer(engine, "demo-qwen3", "demo-qwen3-thinking-2507", sampling)
    drafts = metrics.drafts
    assert drafts.drafted > 0 and drafts.accepted + drafts.rejected == drafts.drafted and len(drafts.tokens) == len(metrics.token_ids)


def test_a_draft_that_cannot_draft_is_said_and_the_answer_stands(engine):
    _, plain = answer(engine, "demo-qwen3")
    _, metrics = answer(engine, "demo-qwen3", "demo-qwen3.5")  # another vocabulary
    assert metrics.token_ids == plain.token_ids
    assert "cannot draft for demo-qwen3" in metrics.drafts.note and "demo-qwen3-thinking-2507" in metrics.summary()


def test_drafts_survive_a_saved_conversation():
    drafts = Drafts(PROMPT_LOOKUP, 4, 8, 6, 3, (("Hi", False), ("!", True)), 10.0)
    metrics = Metrics(3, 2, 0, 0.1, 20.0, None, 1.0, drafts=drafts, token_ids=(1, 2))
    assert Metrics.from_dict(json.loads(json.dumps(asdict(metrics)))) == metrics
    assert "6 of 8 accepted (75%), 0.67 tokens per pass, 2.00x the 10.0 tok/s without drafts" in metrics.summary()


def test_registry_pairs_drafts_by_vocabulary(engine):
    registry = engine.registry
    assert [m.id for m in registry.drafts_for(registry.get("demo-qwen3"))] == ["demo-qwen3-thinking-2507", "demo-qwen3-instruct-2507",
                                                                                "demo-qwen3-tools"]
    assert [m.id for m in registry.drafts_for(registry.get("demo-qwen3.5"))] == ["demo-qwen3.8"]
    assert registry.drafts_for(registry.get("demo-qwen2.5-vl")) == []


@pytest.mark.parametrize("model", ["demo-qwen3", "demo-qwen3.5"])
def test_why_this_token_after_the_fact_equals_recording_while_generating(engine, model):
    """One teacher-forced pass over an answer already given (the drafts' mechanism, every guess the answer's own)."""
    events, recorded = answer(engine, model, alternatives=5)
    during = next(e for e in events if isinstance(e, TokenChoices))
    scored = list(engine.stream(Request(model, PROMPT, GREEDY, thinking=True, alternatives=5, score=recorded.token_ids), threading.Event()))
    after = next(e for e in scored if isinstance(e, TokenChoices))
    metrics = next(e for e in scored if isinstance(e, Metrics))
    assert metrics.token_ids == recorded.token_ids and metrics.drafts is None
    assert [s.token for s in after.steps] == [s.token for s in during.steps] and len(after.steps) == len(recorded.token_ids)
    for a, b in zip(after.steps, during.steps):
        assert a.probability == pytest.approx(b.probability, abs=1e-3) and a.thinking == b.thinking
        assert [c.token for c in a.alternatives][:2] == [c.token for c in b.alternatives][:2]
        assert [c.probability for c in a.alternatives] == pytest.approx([c.probability for c in b.alternatives], abs=1e-3)


def test_a_hybrid_on_llamacpp_without_snapshots_answers_without_drafts_and_says_why(cache_dir, config_file):
    config = load_config(config_file, demo=True, cache_dir=cache_dir, max_input_tokens=512, engine=LLAMA_CPP)
    backend = LocalBackend(config.registry, config.settings)
    _, plain = answer(backend, "demo-qwen3.5")
    _, metrics = answer(backend, "demo-qwen3.5", PROMPT_LOOKUP)
    assert metrics.token_ids == plain.token_ids and metrics.drafts.drafted == 0
    assert "llama_cpp_hybrid_drafts" in metrics.drafts.note and "llama_cpp_hybrid_drafts" in metrics.summary()
    _, scored = answer(backend, "demo-qwen3.5", alternatives=5, score=plain.token_ids)  # one pass, nothing to cut back
    assert scored.token_ids == plain.token_ids


def test_chat_explains_an_answer_already_shown(demo_config, backend):
    """Ticking "why this token?" after the answer: Chat scores it with the request that asked for it."""
    from dataclasses import replace

    from qwen_playground.tasks import chat
    from qwen_playground.tasks.conversation import AssistantTurn

    settings = chat.ChatSettings("demo-qwen3", thinking=True, sampling=GREEDY)
    job = chat.prepare(demo_config, chat.ChatInputs("Hello", settings=settings))
    *_, view = chat.run(backend, job)
    turn = view.conversation.messages[job.answer_id].turn
    assert turn.choices is None and turn.metrics.token_ids
    *_, explained = chat.explain(backend, view.conversation)
    after = explained.conversation.messages[job.answer_id].turn.choices
    assert len(after.steps) == len(turn.metrics.token_ids) and "one pass of demo-qwen3" in after.note
    recorded = chat.prepare(demo_config, chat.ChatInputs("Hello", settings=replace(settings, alternatives=True)))
    *_, shown = chat.run(backend, recorded)
    during = shown.conversation.messages[recorded.answer_id].turn.choices
    assert [s.token for s in during.steps] == [s.token for s in after.steps]
    assert [s.probability for s in during.steps] == pytest.approx([s.probability for s in after.steps], abs=1e-3)
    reopened = AssistantTurn.from_dict(turn.to_dict())  # a saved chat keeps no request
    assert "was not kept" in chat.explained(backend, reopened, threading.Event()).note
    assert list(chat.explain(backend, explained.conversation)) == []  # explained once


def test_compare_puts_drafts_beside_none_and_explains_a_pane_afterwards(demo_config, backend):
    from qwen_playground.tasks import TaskError, compare

    panes = [{"model": "demo-qwen3", "temperature": 0}, {"model": "demo-qwen3", "temperature": 0, "draft": PROMPT_LOOKUP}]
    job = compare.prepare(demo_config, PROMPT[0]["content"], panes)
    *_, view = compare.run(backend, job)
    plain, drafted = (r.chat[-1].turn.metrics for r in view.results)
    assert drafted.token_ids == plain.token_ids and drafted.drafts.method == PROMPT_LOOKUP and plain.drafts is None
    assert view.agreement is not None and "accepted" in view.lines[1]
    done = compare.explain_pane(backend, view.results[0])
    assert len(done.tokens) == len(plain.token_ids) and "one pass of demo-qwen3" in done.tokens_note
    assert compare.explain_pane(backend, done) is done  # explained once
    exported = json.loads(compare.to_json(["q"], [done, view.results[1]]))
    assert "chat" not in exported["panes"][0] and len(exported["panes"][0]["tokens"]) == len(plain.token_ids)
    assert "Why this token" in compare.to_markdown(["q"], [done, view.results[1]])
    with pytest.raises(TaskError, match="Pane 2: 'demo-qwen3.5' cannot draft for demo-qwen3"):
        compare.prepare(demo_config, "Hi", [panes[0], {"model": "demo-qwen3", "draft": "demo-qwen3.5"}])


def test_arena_explains_both_answers_after_the_vote(demo_config, backend, tmp_path):
    from qwen_playground.arena_store import ArenaStore
    from qwen_playground.tasks import arena

    battle = arena.prepare(demo_config, ArenaStore(tmp_path / "arena.sqlite3"), ["demo-qwen3", "demo-qwen2.5"], "Hi")
    *_, view = arena.run(backend, battle)
    arena.explain(backend, view)
    for side, request in zip((view.a, view.b), battle.requests):
        turn = side[-1].turn
        assert len(turn.choices.steps) == len(turn.metrics.token_ids) and f"one pass of {request.model_id}" in turn.choices.note


def test_a_long_answer_is_scored_in_several_forced_passes(engine):
    """tiny-random runs to its token limit: 300 tokens take three forced passes of at most 128."""
    sampling = SamplingParams(temperature=0, max_new_tokens=300)
    asked = Request("tiny-random", [{"role": "user", "content": "Go on."}], sampling, alternatives=3)
    events = list(engine.stream(asked, threading.Event()))
    during, recorded = next(e for e in events if isinstance(e, TokenChoices)), next(e for e in events if isinstance(e, Metrics))
    assert len(recorded.token_ids) == 300
    scored = list(engine.stream(Request("tiny-random", asked.messages, sampling, alternatives=3, score=recorded.token_ids), threading.Event()))
    after = next(e for e in scored if isinstance(e, TokenChoices))
    assert [s.token_id for s in after.steps] == list(recorded.token_ids)
    assert [s.probability for s in after.steps] == pytest.approx([s.probability for s in during.steps], abs=1e-3)


def test_the_chat_api_takes_drafts_and_refuses_one_the_model_cannot_take(app):
    client, _ = app
    words = PROMPT[0]["content"]
    history, _ = client.predict(words, [], "demo-qwen3", "", True, draft=PROMPT_LOOKUP, draft_tokens=3, api_name="/chat")
    titles = [(m.get("metadata") or {}).get("title") or "" for m in history]
    assert any(t.startswith("⚡ Drafted tokens") for t in titles) and any("drafts (prompt lookup, 3)" in t for t in titles)
    with pytest.raises(Exception, match="'demo-qwen3.5' cannot draft for demo-qwen3"):
        client.predict("Hi", [], "demo-qwen3", "", True, draft="demo-qwen3.5", api_name="/chat")
    with pytest.raises(Exception, match="greater than maximum value 8"):  # the slider's own bounds
        client.predict("Hi", [], "demo-qwen3", "", True, draft=PROMPT_LOOKUP, draft_tokens=12, api_name="/chat")
    # a draft model the first model's picker does not list: the API takes it for the model named
    history, _ = client.predict(words, [], "demo-qwen3", "", True, draft="demo-qwen3-thinking-2507", api_name="/chat")
    assert any("drafts (demo-qwen3-thinking-2507, 4)" in ((m.get("metadata") or {}).get("title") or "") for m in history)


def test_a_draft_choice_is_checked_before_sending(demo_config):
    from qwen_playground.tasks import TaskError, drafts

    registry = demo_config.registry
    qwen3 = registry.get("demo-qwen3")
    assert drafts.checked(registry, qwen3, None, 4) == ("", 4) and drafts.checked(registry, qwen3, PROMPT_LOOKUP, "6") == (PROMPT_LOOKUP, 6)
    assert [v for _, v in drafts.choices(registry, qwen3)] == ["", PROMPT_LOOKUP, "demo-qwen3-thinking-2507", "demo-qwen3-instruct-2507",
                                                                "demo-qwen3-tools"]
    for draft, length, field in (("demo-qwen3.5", 4, "draft"), (PROMPT_LOOKUP, 0, "draft_tokens"), (PROMPT_LOOKUP, "many", "draft_tokens")):
        with pytest.raises(TaskError) as refused:
            drafts.checked(registry, qwen3, draft, length)
        assert refused.value.field == field
