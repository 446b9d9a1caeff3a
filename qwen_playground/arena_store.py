"""The blind arena's memory and maths: battles and votes in SQLite, Bradley-Terry ratings.

The store is one SQLite file in WAL mode, opened per operation with a busy
timeout, so several app workers (or processes) can write at once and votes
survive restarts. A vote is accepted once per battle: the primary key on
`votes.battle_id` refuses a second one, even from two requests at once.

Ratings are Bradley-Terry strengths fitted by maximum likelihood (Hunter's MM
algorithm), shown on the Elo scale (1000 = average; 400 points = 10:1 odds),
with 95% intervals from a seeded bootstrap over the votes. A tie or "both bad"
counts as half a win for each side.
"""

from __future__ import annotations

import math
import random
import sqlite3
import time
import uuid
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

CHOICES = {"a": "A is better", "b": "B is better", "tie": "Tie", "bad": "Both are bad"}
SCHEMA = """
CREATE TABLE IF NOT EXISTS battles (
    id TEXT PRIMARY KEY, model_a TEXT NOT NULL, model_b TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS votes (
    battle_id TEXT PRIMARY KEY REFERENCES battles(id),
    choice TEXT NOT NULL CHECK (choice IN ('a', 'b', 'tie', 'bad')), voted REAL NOT NULL);
"""


class VoteRefused(ValueError):
    pass


class ArenaUnavailable(VoteRefused):
    """The vote database cannot be used right now (locked, read-only, unwritable); the app serves on."""


BUSY_TIMEOUT_S = 5


class ArenaStore:
    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        self._ready = False
        try:
            self._open()
        except ArenaUnavailable:  # reported on use; the rest of the app does not need the arena
            pass

    def _open(self) -> None:
        if self._ready:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with closing(sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)) as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as e:
            raise self._unavailable(e) from None
        self._ready = True

    def _unavailable(self, error: Exception) -> ArenaUnavailable:
        text = str(error).lower()
        if "locked" in text or "busy" in text:
            why = "is busy (another program holds a lock); nothing was recorded. Try again in a moment"
        elif "readonly" in text or "read-only" in text or isinstance(error, PermissionError):
            why = "is read-only; votes cannot be recorded. Ask the operator to make it writable or set settings.arena_db"
        else:
            why = f"cannot be used ({type(error).__name__}: {error}). Ask the operator to check settings.arena_db"
        return ArenaUnavailable(f"The vote database {self.path} {why}.")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection for one operation; database failures become ArenaUnavailable with a readable reason."""
        self._open()
        try:
            with closing(sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)) as db:  # autocommit
                db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
                yield db
        except sqlite3.IntegrityError:
            raise
        except (OSError, sqlite3.Error) as e:
            raise self._unavailable(e) from None

    def new_battle(self, model_a: str, model_b: str) -> str:
        battle_id = uuid.uuid4().hex
        with self._connect() as db:
            db.execute("INSERT INTO battles VALUES (?, ?, ?, ?)", (battle_id, model_a, model_b, time.time()))
        return battle_id

    def vote(self, battle_id: str, choice: str) -> tuple[str, str]:
        """Record the one vote of a battle and return (model A, model B) to reveal."""
        if choice not in CHOICES:
            raise VoteRefused(f"Unknown vote '{choice}'; vote one of: {', '.join(CHOICES)}.")
        with self._connect() as db:
            row = db.execute("SELECT model_a, model_b FROM battles WHERE id = ?", (battle_id,)).fetchone()
            if row is None:
                raise VoteRefused("Unknown battle: start a battle first, then vote on it.")
            try:
                db.execute("INSERT INTO votes VALUES (?, ?, ?)", (battle_id, choice, time.time()))
            except sqlite3.IntegrityError:
                raise VoteRefused("This battle already has its vote (and its models are revealed): start a new battle.") from None
        return row[0], row[1]

    def votes(self) -> list[tuple[str, str, str]]:
        """(model A, model B, choice) for every vote, oldest first."""
        with self._connect() as db:
            return db.execute("SELECT b.model_a, b.model_b, v.choice FROM votes v JOIN battles b ON b.id = v.battle_id ORDER BY v.voted").fetchall()


def draw_pair(pool: list[str], rng: random.Random | None = None) -> tuple[str, str]:
    if len(set(pool)) < 2:
        raise ValueError("The arena needs at least two different models in its pool (settings.arena_pool).")
    a, b = (rng or random).sample(sorted(set(pool)), 2)
    return a, b


def bradley_terry(votes: list[tuple[str, str, str]], iterations: int = 500) -> dict[str, float]:
    """Elo-scaled Bradley-Terry ratings; a small symmetric prior keeps unbeaten models finite."""
    models = sorted({m for a, b, _ in votes for m in (a, b)})
    if not models:
        return {}
    wins = {m: {n: 0.0 for n in models} for m in models}
    for a, b, choice in votes:
        score = {"a": 1.0, "b": 0.0}.get(choice, 0.5)
        wins[a][b] += score
        wins[b][a] += 1 - score
    for m in models:  # prior: one tenth of a tie between every pair
        for n in models:
            if m != n:
                wins[m][n] += 0.05
    strength = {m: 1.0 for m in models}
    for _ in range(iterations):
        updated = {}
        for m in models:
            games = sum((wins[m][n] + wins[n][m]) / (strength[m] + strength[n]) for n in models if n != m)
            updated[m] = sum(wins[m].values()) / games if games else 1.0
        mean_log = sum(math.log(v) for v in updated.values()) / len(models)
        strength = {m: v / math.exp(mean_log) for m, v in updated.items()}
    return {m: 1000 + 400 * math.log10(v) for m, v in strength.items()}


MIN_VOTES = 10  # below this a model's rating and interval mean little: the board says so


@dataclass(frozen=True)
class Standing:
    model: str
    rating: float
    low: float
    high: float
    votes: int
    wins: int
    losses: int
    ties: int

    @property
    def settled(self) -> bool:
        return self.votes >= MIN_VOTES


def leaderboard(votes: list[tuple[str, str, str]], resamples: int = 200, seed: int = 0) -> list[Standing]:
    """Standings with 95% bootstrap intervals over the votes: the models with enough votes best first, then the ones
    with too few (whose rating means little), best first too."""
    ratings = bradley_terry(votes)
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {m: [] for m in ratings}
    for _ in range(resamples if len(votes) > 1 else 0):
        fitted = bradley_terry([rng.choice(votes) for _ in votes], iterations=200)
        for m in samples:
            samples[m].append(fitted.get(m, 1000.0))
    standings = []
    for m, rating in ratings.items():
        spread = sorted(samples[m]) or [rating]
        low, high = spread[int(0.025 * (len(spread) - 1))], spread[int(0.975 * (len(spread) - 1))]
        played = [(a, b, c) for a, b, c in votes if m in (a, b)]
        won = sum(1 for a, b, c in played if (c == "a" and a == m) or (c == "b" and b == m))
        tied = sum(1 for *_, c in played if c in ("tie", "bad"))
        standings.append(Standing(m, rating, low, high, len(played), won, len(played) - won - tied, tied))
    return sorted(standings, key=lambda s: (not s.settled, -s.rating))
