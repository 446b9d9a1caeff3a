"""Whether a user may ask now, and a private record of what they asked for.

A user is 'session@ip' (the browser session and the client's address), named
by the UI and carried by every `Request`. `Guard` applies the rate limits
(requests per minute, generated tokens per hour; moving windows from the
`limits` library, per session and, looser, per IP so a classroom behind one
NAT still works). `RequestLog` holds a salted hash of the user, never the
address, and no prompt text unless the operator opts in. The service layer
(`service/__init__.py`) uses both; nothing here knows about the UI.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import secrets
import threading
import time
from pathlib import Path

from limits import RateLimitItemPerHour, RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from ..core.config import Settings

IP_FACTOR = 8  # one IP may be a whole classroom


class RateLimited(Exception):
    pass


class Guard:
    def __init__(self, settings: Settings):
        self.enabled = settings.rate_limits_active
        self.requests = RateLimitItemPerMinute(settings.requests_per_minute)
        self.tokens = RateLimitItemPerHour(settings.tokens_per_hour)
        self.requests_ip = RateLimitItemPerMinute(settings.requests_per_minute * IP_FACTOR)
        self.tokens_ip = RateLimitItemPerHour(settings.tokens_per_hour * IP_FACTOR)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self.log = RequestLog(settings)

    def admit(self, user: str, cost: int = 1) -> None:
        """Count `cost` requests for `user` (a batch counts each of its requests), or raise RateLimited saying when to
        come back."""
        if not self.enabled or not user:
            return
        session, ip = _keys(user)
        for item, key, what in ((self.tokens, session, "tokens this hour"), (self.tokens_ip, ip, "tokens this hour from your network")):
            if not self.limiter.test(item, key):
                raise RateLimited(f"Rate limit: {item.amount} {what}. Try again in {self._retry_after(item, key)}.")
        for item, key, what in ((self.requests, session, "requests a minute"), (self.requests_ip, ip, "requests a minute from your network")):
            if cost > item.amount:
                raise RateLimited(f"Rate limit: {item.amount} {what}, and this asks for {cost} at once. Use fewer rows or models.")
            if not self.limiter.hit(item, key, cost=cost):
                raise RateLimited(f"Rate limit: {item.amount} {what}. Try again in {self._retry_after(item, key)}.")

    def charge(self, user: str, tokens: int) -> None:
        """Count generated tokens against the hourly budget (a request may finish slightly over it)."""
        if not self.enabled or not user or tokens <= 0:
            return
        session, ip = _keys(user)
        for item, key in ((self.tokens, session), (self.tokens_ip, ip)):
            remaining = self.limiter.get_window_stats(item, key).remaining
            if remaining > 0:
                self.limiter.hit(item, key, cost=min(tokens, remaining))

    def _retry_after(self, item, key: str) -> str:
        seconds = max(1, math.ceil(self.limiter.get_window_stats(item, key).reset_time - time.time()))
        return f"{seconds} s" if seconds < 120 else f"{math.ceil(seconds / 60)} min"


def _keys(user: str) -> tuple[str, str]:
    session, _, ip = user.partition("@")
    return f"session:{session}", f"ip:{ip or session}"


class RequestLog:
    """One JSON line per finished request in <cache_dir>/logs/requests.jsonl: hashed user, model, sizes,
    timings, outcome. Prompt text only with settings.log_prompts.

    Each log owns its file and writes nothing anywhere else: no process-wide logger, so two apps in one process
    (or a test and an app) never write into each other's log.
    """

    def __init__(self, settings: Settings):
        self.with_prompts = settings.log_prompts
        self._salt = b""
        self.path: Path | None = None  # None: the log is off (an unwritable cache)
        self._lock = threading.Lock()
        folder = Path(settings.cache_dir).expanduser() / "logs"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            salt_file = folder / "salt"
            if not salt_file.exists():
                salt_file.write_text(secrets.token_hex(16))
            self._salt = salt_file.read_text().strip().encode()
            (folder / "requests.jsonl").touch()
            self.path = folder / "requests.jsonl"
        except OSError as e:  # an unwritable cache costs the log, not the app
            logging.getLogger(__name__).warning("Request log disabled: %s", e)
            self._salt = self._salt or secrets.token_hex(16).encode()

    def user_id(self, user: str) -> str:
        """A stable pseudonym: the same user gets the same id, and the id does not reveal the user."""
        return hashlib.sha256(self._salt + user.encode()).hexdigest()[:16] if user else "-"

    def write(self, user: str, model: str, outcome: str, messages: list[dict] | None = None, **figures) -> None:
        record = {"at": round(time.time(), 3), "user": self.user_id(user), "model": model, "outcome": outcome,
                  **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in figures.items() if v is not None}}
        if self.with_prompts and messages:
            record["prompt"] = messages[-1].get("content") if isinstance(messages[-1].get("content"), str) else "(multimodal)"
        if self.path is None:
            return
        try:
            with self._lock, self.path.open("a", encoding="utf-8") as log:
                log.write(json.dumps(record, ensure_ascii=False) + "\n")
        except OSError as e:  # a full or vanished disk costs this line, not the request
            logging.getLogger(__name__).warning("Request log line lost: %s", e)
