"""Compare tab, arena votes in SQLite, and Bradley-Terry ratings."""

import threading

import pytest

from qwen_playground.arena_store import ArenaStore, VoteRefused, bradley_terry, draw_pair, leaderboard
from qwen_playground.core.config import load_config
from qwen_playground.tasks.compare import PaneResult, PaneSetup, agreement, presets, to_json, to_markdown


def texts(history):
    return [("".join(p["text"] for p in m["content"]) if isinstance(m["content"], list) else m["content"]) for m in history]


# ---- compare: pure parts -------------------------------------------------------------

def test_presets_come_from_registry_facts():
    full = presets(load_config(demo=True).registry)
    assert any(name.startswith("Thinking on vs off") for name in full)
    setups = next(v for k, v in full.items() if k.startswith("Thinking on vs off"))
    assert setups[0].model == setups[1].model and setups[0].thinking and not setups[1].thinking


def test_generation_presets_pair_families_that_think_alike():
    found = presets(load_config(demo=True).registry)
    assert [s.model for s in found["Qwen3 vs Qwen3.5 (demo-qwen3 vs demo-qwen3.5)"]] == ["demo-qwen3", "demo-qwen3.5"]
    assert [s.model for s in found["Qwen2.5-Instruct vs Qwen3-Instruct-2507 (demo-qwen2.5 vs demo-qwen3-instruct-2507)"]] == [
        "demo-qwen2.5", "demo-qwen3-instruct-2507"]
    split = found["Never thinks vs always thinks: Qwen3-Instruct-2507 vs Qwen3-Thinking-2507"]
    assert [(s.model, s.thinking) for s in split] == [("demo-qwen3-instruct-2507", False), ("demo-qwen3-thinking-2507", True)]


def test_presets_of_the_real_registry():
    from qwen_playground.core.registry import Registry
    from qwen_playground.tasks.compare import comparable_models
    config = load_config(demo=True)
    registry = Registry.build(list(config.registry.models.values()), {**config.registry.routes, **{
        "chat": config.registry.routes["chat"].model_copy(update={"default": "qwen3-1.7b", "alternatives": ("qwen3-4b",)}),
        "code": config.registry.routes["code"].model_copy(update={"default": "qwen2.5-coder-1.5b-instruct", "alternatives": ()}),
        "math": config.registry.routes["math"].model_copy(update={"default": "qwen2.5-math-1.5b-instruct", "alternatives": ()}),
        "multilingual": config.registry.routes["multilingual"].model_copy(update={"default": "qwen2.5-1.5b-instruct", "alternatives": ("qwen2.5-7b-instruct",)})}},
        endpoints=list(config.registry.endpoints.values()))
    found = presets(registry)
    assert [s.model for s in found["Instruct vs Coder vs Math (Qwen2.5)"]] == ["qwen2.5-1.5b-instruct", "qwen2.5-coder-1.5b-instruct",
                                                                              "qwen2.5-math-1.5b-instruct"]
    assert [s.model for s in found["Two sizes of Qwen3 (1.7B vs 4B)"]] == ["qwen3-1.7b", "qwen3-4b"]
    assert len(comparable_models(registry)) == 6


def test_math_agreement():
    assert agreement([r"so \boxed{1/2}", r"\boxed{0.5}", r"\boxed{\frac{1}{2}}"]) == "✅ All 3 final answers agree: 1/2"
    differ = agreement([r"\boxed{1/2}", r"\boxed{3}", r"\boxed{0.5}"])
    assert differ.startswith("⚠️") and "panes 1, 3: 1/2" in differ and "pane 2: 3" in differ
    assert agreement([r"\boxed{1}", "no box"]) == ""


def test_export_markdown_and_json():
    results = [PaneResult(PaneSetup(model="a", thinking=True, temperature=0.6, max_new_tokens=64), "Answer A", "thought", {"metrics": "1 tok/s"}),
               PaneResult(PaneSetup(model="b"), "", "", {}, "boom")]
    md = to_markdown(["Q?"], results)
    assert "**Prompt 1:** Q?" in md and "## Pane 1: a" in md and "Answer A" in md and "error: boom" in md and "thinking: on" in md
    data = __import__("json").loads(to_json(["Q?"], results))
    assert data["panes"][0]["setup"]["model"] == "a" and data["panes"][1]["error"] == "boom"


# ---- compare: through the app -----------------------------------------------------

def panes(*setups, histories=()):
    """The /compare API's pane list: (model, thinking) pairs, greedy, 64 new tokens."""
    return [{"model": model, "thinking": thinking, "temperature": 0.0, "max_new_tokens": 64,
             "history": histories[i] if i < len(histories) else []} for i, (model, thinking) in enumerate(setups)]


def chats_of(result):
    return [pane["messages"] for pane in result["panes"]]


def test_compare_streams_every_pane_into_its_own_place_and_one_failure_stays_local(app):
    client, _ = app
    job = client.submit("Hi", panes(("demo-qwen3", True), ("demo-qwen2.5", False), ("broken", False)), api_name="/compare")
    steps = list(job)
    out = job.result()
    chats, lines = chats_of(out), [pane["metrics"] for pane in out["panes"]]
    assert len(steps) > 3 and len(chats) == 3
    assert texts(chats[0])[-1].startswith("Hello from a little demo") and texts(chats[0])[1].startswith("Demo mode")
    assert texts(chats[1])[-1].startswith("Hi there, I am a demo")
    assert "Could not load broken" in texts(chats[2])[-1] and lines[2].startswith("⚠️")
    assert "tok/s" in lines[0] and "thinking tokens" in lines[0] and "tok/s" in lines[1]


def test_follow_ups_continue_each_panes_conversation(app):
    client, _ = app
    first = chats_of(client.predict("First", panes(("demo-qwen3", False), ("demo-qwen2.5", False)), api_name="/compare"))
    second = chats_of(client.predict("Second", panes(("demo-qwen3", False), ("demo-qwen2.5", False), histories=first), api_name="/compare"))
    assert texts(second[0]).count("First") == 1 and texts(second[0])[-2] == "Second" and len(second[0]) == 4
    assert texts(second[1])[0] == "First" and texts(second[1])[-1].startswith("Hi there, I am a demo")


def test_four_panes_with_their_own_precision_and_the_math_template(app):
    client, _ = app
    # the first pane uses the names before 0.2 ("weights", "none"), still accepted for one release
    four = [{"model": "demo-qwen2.5", "weights": "none", "max_new_tokens": 16}, {"model": "demo-qwen2.5", "precision": "8-bit", "max_new_tokens": 16},
            {"model": "demo-qwen3"}, {"model": "demo-qwen3", "thinking": True}]
    out = client.predict("What is $1+1$?", four, "Math (step by step, \\boxed{} answer)", api_name="/compare")
    lines = [pane["metrics"] for pane in out["panes"]]
    assert len(lines) == 4 and "8-bit" in lines[1] and "thinking tokens" in lines[3] and "thinking tokens" not in lines[2]
    assert texts(out["panes"][0]["messages"])[0] == "What is \\(1+1\\)?"


def test_compare_bad_input(app):
    client, _ = app
    with pytest.raises(Exception, match="Type a prompt first"):
        client.predict("", panes(("demo-qwen3", False), ("demo-qwen2.5", False)), api_name="/compare")
    with pytest.raises(Exception, match="between 2 and 4 panes"):
        client.predict("Hi", panes(("demo-qwen3", False)), api_name="/compare")
    with pytest.raises(Exception, match="Pane 2: temperature"):
        client.predict("Hi", [{"model": "demo-qwen3"}, {"model": "demo-qwen3", "temperature": 9}], api_name="/compare")
    with pytest.raises(Exception, match="Pane 1: colour"):
        client.predict("Hi", [{"model": "demo-qwen3", "colour": "red"}, {"model": "demo-qwen3"}], api_name="/compare")
    with pytest.raises(Exception, match="Unknown model 'qwen-nope'"):
        client.predict("Hi", [{"model": "qwen-nope"}, {"model": "demo-qwen3"}], api_name="/compare")


def test_models_that_do_not_fit_together_run_in_turn(cache_dir, config_file):
    from qwen_playground.backends.router import Router

    config = load_config(config_file, demo=True, cache_dir=cache_dir, memory_budget_gb=0.06, dtype="float32", engine="transformers")
    router = Router(config)
    message = router.fit_problem([("demo-qwen3", "full"), ("demo-qwen2.5", "full")])
    assert message and "one after another" in message
    assert router.fit_problem([("demo-qwen3", "full"), ("demo-qwen3", "full")]) is None


def test_full_and_8_bit_weights_of_one_model_are_checked_against_memory_as_two(cache_dir, config_file):
    from qwen_playground.backends.router import Router
    from qwen_playground.core.generation import Request
    from qwen_playground.tasks.streaming import stream_turns

    # demo-qwen3 (0.01B parameters) in float32: 40 MB full, 10 MB in 8-bit: each fits 45 MiB, both together do not
    config = load_config(config_file, demo=True, cache_dir=cache_dir, memory_budget_gb=45 / 1024, dtype="float32", engine="transformers")
    requests = [Request("demo-qwen3", [{"role": "user", "content": "Hi"}], precision=q) for q in ("full", "8-bit")]
    turns = stream_turns(Router(config), requests)
    notice = next(turns).notice  # the first state, before anything runs
    turns.close()
    assert "demo-qwen3, demo-qwen3 (8-bit) need about" in notice and "one after another" in notice


# ---- arena ------------------------------------------------------------------------

def test_votes_persist_and_duplicates_are_refused(tmp_path):
    store = ArenaStore(tmp_path / "arena.sqlite3")
    battle = store.new_battle("m1", "m2")
    assert store.vote(battle, "a") == ("m1", "m2")
    with pytest.raises(VoteRefused, match="already has its vote"):
        store.vote(battle, "b")
    with pytest.raises(VoteRefused, match="Unknown battle"):
        store.vote("nope", "a")
    with pytest.raises(VoteRefused, match="Unknown vote 'maybe'"):
        store.vote(store.new_battle("m1", "m2"), "maybe")
    assert ArenaStore(tmp_path / "arena.sqlite3").votes() == [("m1", "m2", "a")]  # a new process sees it


def test_concurrent_voters_on_one_battle_get_exactly_one_vote(tmp_path):
    store = ArenaStore(tmp_path / "arena.sqlite3")
    battles = [store.new_battle("x", "y") for _ in range(20)]
    accepted, refused = [], []

    def voter(choice):
        for b in battles:
            try:
                ArenaStore(tmp_path / "arena.sqlite3").vote(b, choice)
                accepted.append(b)
            except VoteRefused:
                refused.append(b)

    threads = [threading.Thread(target=voter, args=(c,)) for c in ("a", "b", "tie", "bad")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(accepted) == sorted(battles) and len(refused) == 60 and len(store.votes()) == 20


def test_ratings_on_a_known_vote_set():
    chain = [("A", "B", "a")] * 6 + [("B", "C", "a")] * 6 + [("A", "C", "a")] * 6
    ratings = bradley_terry(chain)
    assert ratings["A"] > ratings["B"] > ratings["C"]
    even = bradley_terry([("A", "B", "a"), ("A", "B", "b"), ("A", "B", "tie"), ("A", "B", "bad")])
    assert even["A"] == pytest.approx(1000) and even["B"] == pytest.approx(1000)
    board = leaderboard(chain)
    assert [s.model for s in board] == ["A", "B", "C"]
    top = board[0]
    assert top.votes == 12 and top.wins == 12 and top.losses == 0 and top.low <= top.rating <= top.high


def test_draw_pair_needs_two_models():
    a, b = draw_pair(["x", "y", "z"])
    assert a != b
    with pytest.raises(ValueError, match="at least two"):
        draw_pair(["x", "x"])


def test_arena_round_trip_through_the_app(app):
    client, _ = app
    with pytest.raises(Exception, match="No battle to vote on yet"):
        client.predict("", "a", api_name="/arena_vote")
    a, b, battle, reveal = client.predict("Hello", api_name="/arena_battle")
    assert reveal == "**Your vote?**" and battle
    assert not any(model_id in str(a) + str(b) for model_id in ("demo-qwen3", "demo-qwen2.5", "tiny-random"))  # blind
    assert "Qwen" not in str(a) + str(b)  # not even the demo replies name their family
    result = client.predict(battle, "tie", api_name="/arena_vote")
    assert result.startswith("Your vote: **Tie**. Model A was **")
    with pytest.raises(Exception, match="already has its vote"):
        client.predict(battle, "a", api_name="/arena_vote")
    table = client.predict(api_name="/leaderboard")
    assert table["headers"][:3] == ["rank", "model", "rating"] and len(table["data"]) >= 2


def test_votes_survive_an_app_restart(demo_config):
    from gradio_client import Client

    from qwen_playground.ui import build_demo

    def run_app():
        demo = build_demo(demo_config)
        _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, ssr_mode=False)
        return demo, Client(url, verbose=False)

    demo, client = run_app()
    _, _, battle, _ = client.predict("Which is better?", api_name="/arena_battle")
    client.predict(battle, "a", api_name="/arena_vote")
    before = client.predict(api_name="/leaderboard")["data"]
    demo.close()
    demo, client = run_app()
    try:
        after = client.predict(api_name="/leaderboard")["data"]
        assert after == before and sum(row[4] for row in after) >= 2
        with pytest.raises(Exception, match="already has its vote"):
            client.predict(battle, "b", api_name="/arena_vote")
    finally:
        demo.close()


def test_the_board_says_when_a_rating_rests_on_too_few_votes(tmp_path):
    from qwen_playground.arena_store import MIN_VOTES
    from qwen_playground.ui.arena_tab import standings_table

    store = ArenaStore(tmp_path / "arena.sqlite3")
    store.vote(store.new_battle("m1", "m2"), "a")
    rows = standings_table(store)
    assert [r[3] for r in rows] == [f"too few votes (under {MIN_VOTES})"] * 2  # one vote: no interval that looks certain
    for _ in range(MIN_VOTES):
        store.vote(store.new_battle("m1", "m2"), "a")
    low, high = (int(x) for x in standings_table(store)[0][3].split(" – "))
    assert low <= standings_table(store)[0][2] <= high


def test_a_model_with_too_few_votes_is_listed_after_the_ranked_ones():
    settled = [("A", "B", "a")] * 6 + [("B", "A", "a")] * 5  # A and B: 11 votes each
    lucky = [("C", "B", "a")]  # C: one vote, won: the highest rating, and it means little
    board = leaderboard(settled + lucky)
    assert [s.model for s in board][-1] == "C" and board[-1].rating > board[0].rating and not board[-1].settled
    from qwen_playground.arena_store import ArenaStore
    from qwen_playground.ui.arena_tab import standings_table

    class Store(ArenaStore):
        def votes(self):
            return settled + lucky

    rows = standings_table(Store(":memory:"))
    assert [r[0] for r in rows] == [1, 2, "–"] and rows[-1][1] == "C"
