"""The Arena task: two anonymous models answer one prompt; the names stay hidden until the vote.

Votes and ratings live in `arena_store.py` (SQLite store, Bradley-Terry); this
module starts a battle, streams its two answers through the shared fan-out,
and takes the vote.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Iterator

from ..arena_store import CHOICES, ArenaStore, ArenaUnavailable, VoteRefused, draw_pair
from ..backends import Backend
from ..core.config import AppConfig
from ..core.generation import Request
from . import TaskError, refuse_if_too_long, require_text, resolve
from .chat import explained
from .conversation import Message
from .streaming import stream_turns


@dataclass(frozen=True)
class Battle:
    battle_id: str
    prompt: str
    requests: list[Request]


def check_prompt(config: AppConfig, pool: list[str], prompt: object) -> str:
    """The prompt, refused when empty or too long for any model of the pool (a battle may draw any two)."""
    text = require_text(prompt, "a prompt", "prompt")
    for model_id in pool:
        refuse_if_too_long(config, resolve(config.registry, model_id), [{"role": "user", "content": text}], field="prompt")
    return text


def prepare(config: AppConfig, store: ArenaStore, pool: list[str], prompt: object, user: str = "",
            rng: random.Random | None = None) -> Battle:
    """Draw two different models from `pool` and record the battle. Thinking is off for both, so neither gives itself away."""
    text = check_prompt(config, pool, prompt)
    try:
        model_a, model_b = draw_pair(pool, rng)
        battle_id = store.new_battle(model_a, model_b)
    except ValueError as e:  # too few models, or the vote store is unavailable
        raise TaskError(str(e)) from None
    specs = [resolve(config.registry, model_a), resolve(config.registry, model_b)]
    requests = [Request(s.id, [{"role": "user", "content": text}], s.preset(False), thinking=False, user=user) for s in specs]
    return Battle(battle_id, text, requests)


@dataclass(frozen=True)
class BattleView:
    a: list[Message]  # the prompt and model A's answer
    b: list[Message]
    done: bool = False


def run(backend: Backend, battle: Battle) -> Iterator[BattleView]:
    user = Message.user(battle.prompt)
    for state in stream_turns(backend, battle.requests):
        for turn, request in zip(state.turns, battle.requests, strict=True):
            turn.request = request  # what "why these tokens?" asks again after the vote
        yield BattleView([user, Message.assistant(state.turns[0])], [user, Message.assistant(state.turns[1])], state.done)


def explain(backend: Backend, view: BattleView) -> BattleView:
    """Why these tokens? for both answers, after the vote (the note names the model): one pass of each over its answer."""
    for side in (view.a, view.b):
        turn = side[-1].turn
        if turn is not None and turn.choices is None and turn.produced_output:
            turn.choices = explained(backend, turn, threading.Event())
    return view


def vote(store: ArenaStore, battle_id: object, choice: object) -> str:
    """Record a vote (a, b, tie or bad); returns the reveal of which models A and B were."""
    choice = str(choice or "").strip().lower()
    if not str(battle_id or "").strip():
        raise TaskError("No battle to vote on yet: start one with New battle, and vote once both answers are in.")
    try:
        model_a, model_b = store.vote(str(battle_id or "").strip(), choice)
    except (VoteRefused, ArenaUnavailable) as e:
        raise TaskError(str(e)) from None
    return f"Your vote: **{CHOICES[choice]}**. Model A was **{model_a}**, model B was **{model_b}**."
