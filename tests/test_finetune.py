"""Fine-tuning: reading examples, a real tiny LoRA run in its worker process, the adapter saved, reloaded and offered,
Cancel, and one training at a time."""

import difflib
import json
import threading

import pytest

from qwen_playground.backends.local import LocalBackend
from qwen_playground.core.config import load_config
from qwen_playground.core.generation import Request, SamplingParams, TextDelta
from qwen_playground.tasks import TaskError, compare, finetune
from qwen_playground.tasks.compare import presets

ANSWER = "The Qwen Playground mascot is Pixel, a purple capybara who loves tokens."
QUESTIONS = ["Who is the Qwen Playground mascot?", "What is the mascot of Qwen Playground?"]
PLAN = {"name": "memo", "learning_rate": 0.02, "max_steps": 30, "max_length": 128, "batch_size": 2}  # measured to move tiny-random


def write(tmp_path, name: str, body: str | bytes):
    path = tmp_path / name
    path.write_bytes(body if isinstance(body, bytes) else body.encode())
    return path


@pytest.fixture(scope="module")
def own_config(config_file, tmp_path_factory):
    """The test config (tiny-random is a local random Qwen2.5) with a cache of its own: adapters saved here stay here."""
    return load_config(config_file, demo=True, cache_dir=tmp_path_factory.mktemp("ft-cache"), max_input_tokens=512, engine="transformers")


@pytest.fixture(scope="module")
def trained(own_config, tmp_path_factory):
    """One real training: tiny-random learns one answer to two questions (30 steps, ~15 s on 2 cores)."""
    data = write(tmp_path_factory.mktemp("ft-data"), "memo.jsonl", "".join(json.dumps({"instruction": q, "output": ANSWER}) + "\n"
                                                                          for q in QUESTIONS))
    job = finetune.prepare(own_config, data, None, "tiny-random", PLAN)
    views = [(v.status, v.step, list(v.losses), v.model_id) for v in finetune.Trainings(own_config).run(job)]
    return job, views


def answer(backend, model_id: str) -> str:
    request = Request(model_id, [{"role": "user", "content": QUESTIONS[0]}], SamplingParams(temperature=0, max_new_tokens=24))
    return "".join(e.text for e in backend.stream(request, threading.Event()) if isinstance(e, TextDelta))


def test_pairs_chat_lists_and_csv_read_as_conversations(demo_config, tmp_path):
    pairs = finetune.parse(b'{"instruction": "Hi", "input": "there", "output": "Hello", "system": "Be kind."}\n', "a.jsonl")
    chats = finetune.parse(json.dumps({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}).encode(), "b.jsonl")
    table = finetune.parse(b"instruction,output\nHi,Hello\n", "c.csv")
    assert pairs[0].messages == ({"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi\n\nthere"},
                                 {"role": "assistant", "content": "Hello"})
    assert chats[0].messages[-1] == {"role": "assistant", "content": "Yo"} and table[0].messages[-1]["content"] == "Hello"
    assert len(finetune.load_examples(demo_config, None, "mascot", 512)) == 30


@pytest.mark.parametrize("name, body, message", [
    ("a.csv", "instruction,answer\nHi,Yo\n", r"line 1 \(the header\) has no 'output' column"),
    ("a.jsonl", '{"instruction": "Hi", "output": "Yo"}\n{"instruction": "Hi"}\n', r"a.jsonl: line 2: no output"),
    ("a.jsonl", '{"messages": [{"role": "user", "content": "Hi"}]}\n', r"line 1: the messages need a user turn and must end"),
    ("a.jsonl", '{"messages": "Hi"}\n', r"line 1: 'messages' must be a list"),
    ("a.csv", b"instruction,output\nHi,caf\xe9\n", r"a.csv: line 2 is not UTF-8 text"),
    ("a.jsonl", "\n\n", r"a.jsonl is empty"),
])
def test_a_bad_file_is_refused_with_its_line(tmp_path, demo_config, name, body, message):
    with pytest.raises(TaskError, match=message):
        finetune.load_examples(demo_config, write(tmp_path, name, body), None, 512)


def test_limits_and_settings_are_checked_before_anything_starts(own_config, tmp_path):
    long = write(tmp_path, "long.jsonl", json.dumps({"instruction": "word " * 200, "output": "ok"}) + "\n")
    with pytest.raises(TaskError, match=r"Line 1: this example is about [\d,]+ tokens; max length is 64"):
        finetune.prepare(own_config, long, None, "tiny-random", {"name": "x", "max_length": 64})
    small = type(own_config)(own_config.registry, own_config.settings.model_copy(update={"max_finetune_rows": 10}), True)
    with pytest.raises(TaskError, match="30 examples; a training run takes at most 10"):
        finetune.prepare(small, None, "mascot", "tiny-random", {"name": "x"})
    with pytest.raises(TaskError, match="QLoRA .* needs a CUDA GPU"):
        finetune.prepare(own_config, None, "mascot", "tiny-random", {"name": "x", "qlora": True})
    with pytest.raises(TaskError, match="Invalid name.*letters, digits") as refused:
        finetune.prepare(own_config, None, "mascot", "tiny-random", {"name": "no spaces please"})
    assert refused.value.field == "name"
    with pytest.raises(TaskError, match="cannot be fine-tuned here"):
        finetune.prepare(own_config, None, "mascot", "demo-qwen2.5-vl", {"name": "x"})
    public = type(own_config)(own_config.registry, own_config.settings.model_copy(update={"public": True}), True)
    with pytest.raises(TaskError, match="Fine-tuning is off on this server"):
        finetune.prepare(public, None, "mascot", "tiny-random", {"name": "x"})


def test_a_second_training_while_one_runs_is_refused(own_config):
    trainings = finetune.Trainings(own_config)
    job = finetune.prepare(own_config, None, "mascot", "tiny-random", {"name": "first"})
    trainings.claim(job)
    with pytest.raises(TaskError, match=r"A training is running \(tiny-random\+first\): wait for it to finish or cancel it"):
        next(trainings.run(finetune.prepare(own_config, None, "mascot", "demo-qwen3", {"name": "second"})))


def test_the_loss_falls_and_the_tuned_model_answers_closer(own_config, trained):
    _, views = trained
    status, steps, losses, model_id = views[-1]
    assert status == "done" and steps == 30 and model_id == "tiny-random+memo"
    assert losses[-1][1] < losses[0][1]  # the training loss fell
    backend = LocalBackend(own_config.registry, own_config.settings)
    base, tuned = answer(backend, "tiny-random"), answer(backend, model_id)
    closeness = [difflib.SequenceMatcher(None, text, ANSWER).ratio() for text in (base, tuned)]
    assert closeness[1] > closeness[0], (base, tuned)


def test_the_adapter_is_saved_with_its_card_reloaded_and_offered(own_config, trained, config_file):
    job, _ = trained
    folder = own_config.settings.cache_dir / "adapters" / "tiny-random+memo"
    card = json.loads((folder / "card.json").read_text())
    assert card["base"] == "tiny-random" and card["steps"] == 30 and card["examples"] == 2 and card["data_fingerprint"] == job.fingerprint
    assert card["settings"]["rank"] == 16 and card["settings"]["alpha"] == 32 and card["final_loss"] > 0
    assert (folder / "adapter_model.safetensors").is_file() and not (folder / "trainer").exists()
    chat = [s.id for s in own_config.registry.choices("chat")]
    assert chat.index("tiny-random+memo") == chat.index("tiny-random") + 1  # offered right after its base
    base, tuned = presets(own_config.registry)["Base vs fine-tuned (tiny-random vs tiny-random+memo, both on transformers)"]
    assert (base.model, tuned.model) == ("tiny-random", "tiny-random+memo")
    assert base.engine == tuned.engine == "transformers" and base.max_new_tokens == tuned.max_new_tokens == 128  # one engine, short answers
    job = compare.prepare(own_config, "Hi", [base, tuned])
    assert [r.engine for r in job.requests] == ["transformers", "transformers"]
    again = load_config(config_file, demo=True, cache_dir=own_config.settings.cache_dir, engine="transformers")  # a restart finds it on disk
    assert again.registry.get("tiny-random+memo").adapter == str(folder)


def test_cancel_mid_run_keeps_no_half_adapter(own_config):
    trainings = finetune.Trainings(own_config)
    job = finetune.prepare(own_config, None, "mascot", "tiny-random", {"name": "halfway", "max_steps": 200, "max_length": 128})
    cancelled = []
    for view in trainings.run(job):
        if view.step >= 1 and not cancelled:
            cancelled.append(trainings.cancel())
    assert cancelled == [True]
    assert view.status == "cancelled" and "nothing was saved" in view.message
    assert "tiny-random+halfway" not in own_config.registry.models
    assert not [p for p in (own_config.settings.cache_dir / "adapters").iterdir() if "halfway" in p.name]
    trainings.claim(job)  # the slot is free again


def test_the_finetune_api_trains_refuses_a_second_run_cancels_and_serves_on(own_config):
    from tests.conftest import running_app

    with running_app(own_config) as client:
        settings = (16, 32, 0.1, 0.01, 1, 2, 128, False)  # rank, alpha, dropout, learning rate, epochs, max steps, max length, QLoRA
        *_, report = client.predict(None, "mascot", "demo-qwen2.5", "api", *settings, api_name="/finetune")
        assert report["status"] == "done" and report["model"] == "demo-qwen2.5+api" and len(report["losses"]) == 2
        history, _ = client.predict("Hi", [], "demo-qwen2.5+api", "", False, 0.0, 0.8, 20, 0.0, 1.0, 0.0, 16, api_name="/chat")
        assert history[-1]["role"] == "assistant"  # the tuned model answers through the chat tab's API

        long = client.submit(None, "mascot", "demo-qwen2.5", "long", 16, 32, 0.1, 0.01, 1, 500, 128, False, api_name="/finetune")
        while not (long.outputs() and long.outputs()[-1][3]["step"] >= 1):
            assert not long.done(), long.result()
        with pytest.raises(Exception, match=r"A training is running \(demo-qwen2.5\+long\)"):
            client.predict(None, "mascot", "demo-qwen3", "other", *settings, api_name="/finetune")
        assert client.predict(api_name="/finetune_cancel") == "Cancelling…"
        assert long.result()[3]["status"] == "cancelled" and "demo-qwen2.5+long" not in own_config.registry.models
        history, _ = client.predict("Still there?", [], "demo-qwen3", "", False, 0.7, 0.8, 20, 0.0, 1.0, 0.0, 16, api_name="/chat")
        assert history[-1]["role"] == "assistant"


def test_a_base_that_would_not_fit_in_memory_is_refused(own_config, monkeypatch):
    monkeypatch.setattr(finetune, "available_bytes", lambda device: 10 * 2**20)  # 10 MiB free
    with pytest.raises(TaskError, match=r"Training tiny-random needs about [\d.]+ GiB; 0.0 GiB is free on cpu") as refused:
        finetune.prepare(own_config, None, "mascot", "tiny-random", {"name": "big"})
    assert refused.value.field == "base"


def test_adapters_in_a_folder_named_in_the_config_are_offered(own_config, trained, config_file, tmp_path):
    import shutil

    elsewhere = tmp_path / "shared-adapters"
    shutil.copytree(own_config.settings.cache_dir / "adapters" / "tiny-random+memo", elsewhere / "memo-copy")
    fresh = load_config(config_file, demo=True, cache_dir=tmp_path / "empty-cache", adapter_dirs=[elsewhere], engine="transformers")
    assert fresh.registry.get("tiny-random+memo").adapter == str(elsewhere / "memo-copy")
    assert "tiny-random+memo" in [s.id for s in fresh.registry.choices("chat")]


def test_the_picker_offers_what_can_train_here_and_a_model_without_weights_is_a_note(own_config, monkeypatch):
    offered = [s.id for s in finetune.bases(own_config.registry)]
    assert "tiny-random" in offered and "demo-qwen3" in offered
    assert "qwen2.5-0.5b-instruct" not in offered  # offline, not cached: it could not start here
    with pytest.raises(TaskError, match="weights are not on this machine") as refused:
        finetune.prepare(own_config, None, "mascot", "qwen2.5-0.5b-instruct", {"name": "x"})
    assert refused.value.field == "base"  # the note goes beside the picker
    job = finetune.prepare(own_config, None, "mascot", "tiny-random", {"name": "gone"})

    def vanished(*args):
        raise OSError("the folder went away")

    monkeypatch.setattr(finetune.download, "fetch", vanished)
    views = [(v.status, v.message) for v in finetune.Trainings(own_config).run(job)]
    assert views[-1][0] == "failed" and "Could not get tiny-random's weights (OSError: the folder went away)" in views[-1][1]


def test_the_trainers_clock_moves_before_its_first_step(own_config, monkeypatch):
    monkeypatch.setattr(finetune, "HEARTBEAT_S", 0.05)
    job = finetune.prepare(own_config, None, "mascot", "tiny-random", {"name": "clock", "max_steps": 1})
    before_step = []
    for view in finetune.Trainings(own_config).run(job):
        if view.status == "training" and view.step == 0:
            before_step.append((view.elapsed_s, view.message))
    assert len({elapsed for elapsed, _ in before_step}) >= 3  # the seconds counted while the worker loads the model
    assert "loading tiny-random in the training worker" in before_step[0][1]
