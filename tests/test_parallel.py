import threading
import time

from qwen_playground.backends import Backend
from qwen_playground.core.generation import Done, Error, Request, TextDelta
from qwen_playground.tasks.streaming import stream_all


def test_panes_stream_together_into_the_right_place(backend):
    requests = [Request("demo-qwen3", [{"role": "user", "content": "a"}], thinking=False),
                Request("demo-qwen2.5", [{"role": "user", "content": "b"}]),
                Request("no-such-model", [{"role": "user", "content": "c"}])]
    texts, ends = {0: "", 1: "", 2: ""}, {}
    for index, event in stream_all(backend, requests):
        if isinstance(event, TextDelta):
            texts[index] += event.text
        if isinstance(event, (Done, Error)):
            ends[index] = event
    assert texts[0].startswith("Hello from a little demo") and texts[1].startswith("Hi there, I am a demo")
    assert isinstance(ends[2], Error) and ends[0] == Done("stop") and ends[1] == Done("stop")


class _Slow(Backend):
    """A backend that fails or waits by name: for interleaving and crash isolation."""

    def stream(self, request, cancel):
        if request.model_id == "crash":
            raise RuntimeError("pane blew up")
        for i in range(5):
            if cancel.is_set():
                return
            time.sleep(0.2 if request.model_id == "slow" else 0.01)
            yield TextDelta(str(i))
        yield Done("stop")


def stream_threads() -> list[threading.Thread]:
    """The pane workers `stream_all` starts (named stream-<pane>)."""
    return [t for t in threading.enumerate() if t.name.startswith("stream-") and t.is_alive()]


def wait_until(condition, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_slow_pane_does_not_hold_up_a_fast_one_and_a_crash_stays_in_its_pane():
    order = []
    for index, event in stream_all(_Slow(), [Request("slow", []), Request("fast", []), Request("crash", [])]):
        order.append((index, event))
    fast_done = order.index((1, Done("stop")))
    slow_done = order.index((0, Done("stop")))
    assert fast_done < slow_done
    assert (2, Error("RuntimeError: pane blew up")) in order


def test_closing_the_merged_stream_cancels_all():
    merged = stream_all(_Slow(), [Request("slow", []), Request("slow", [])])
    next(merged)
    assert stream_threads()  # the pane workers run
    merged.close()
    assert wait_until(lambda: not stream_threads())  # and are gone once the stream is closed


def test_pacer_sends_first_tokens_and_other_events_at_once_then_paces_tokens():
    from qwen_playground.core.generation import Done, Progress, TextDelta
    from qwen_playground.tasks.streaming import Pacer

    pacer = Pacer(interval=60)
    assert pacer.due(Progress("loading"))
    assert pacer.due(TextDelta("a"), stream=0)  # first token of pane 0
    assert not pacer.due(TextDelta("b"), stream=0)  # within the interval
    assert pacer.due(TextDelta("x"), stream=1)  # first token of pane 1
    assert pacer.due(Done("stop"), stream=0)
    assert Pacer(interval=0).due(TextDelta("c")) and Pacer(interval=0).due(TextDelta("d"))


class _Crowded(_Slow):
    """As _Slow, but its models never fit in memory together."""

    def fit_problem(self, loads):
        return "too big together: running them one after another."


def test_stream_turns_folds_events_into_turns_and_runs_in_turn_when_told():
    from qwen_playground.tasks.streaming import stream_turns

    states = []
    for final in stream_turns(_Slow(), [Request("slow", []), Request("fast", [])]):  # one state object, updated in place
        states.append((final.done, [t.answer for t in final.turns]))
    assert states[0] == (False, ["", ""]) and len(states) > 2  # an empty first state at once, then growing turns
    assert final.done and final.notice == "" and [t.answer for t in final.turns] == ["01234", "01234"]
    *_, crowded = stream_turns(_Crowded(), [Request("slow", []), Request("fast", [])])
    assert crowded.notice.startswith("too big together") and crowded.turns[1].finish_reason == "stop"
    *_, lone = stream_turns(_Crowded(), [Request("fast", [])])
    assert lone.notice == "" and lone.turns[0].answer == "01234"  # one request is never "in turn"


def test_closing_stream_turns_cancels_its_requests():
    from qwen_playground.tasks.streaming import stream_turns

    states = stream_turns(_Slow(), [Request("slow", []), Request("slow", [])])
    next(states), next(states)
    assert stream_threads()
    states.close()
    assert wait_until(lambda: not stream_threads())


def test_a_stop_flag_ends_every_request_with_its_closing_events():
    from qwen_playground.tasks.streaming import stream_turns

    stop = threading.Event()
    for state in stream_turns(_Slow(), [Request("slow", []), Request("slow", [])], stop):
        if any(t.answer for t in state.turns):
            stop.set()
    assert state.done and all(len(t.answer) < 5 for t in state.turns)  # stopped early, and the stream still ended itself
