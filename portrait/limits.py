"""Spending limits for a public app: generations per visitor per hour, and per day on the owner's key.

Counts are images requested (a 4-variation click counts 4). They are reserved before the
calls and the unused part is given back afterwards, so a burst of clicks cannot overshoot.
The daily count is kept in a small JSON file in the output folder so a restart does not
reset it.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .errors import LimitError

HOUR = 3600.0


@dataclass
class Reservation:
    """Images reserved for one click; give back what was not used with `UsageLimiter.release`."""

    visitor: str
    count: int
    day: str
    stamps: list[float]


class UsageLimiter:
    """Per-visitor hourly and global daily limits (0 = no limit). Thread-safe."""

    def __init__(
        self, per_visitor_hourly: int = 0, daily_cap: int = 0, state_file: Path | None = None
    ) -> None:
        self.per_visitor_hourly = per_visitor_hourly
        self.daily_cap = daily_cap
        self.state_file = state_file
        self._lock = threading.Lock()
        self._visits: dict[str, deque[float]] = {}
        self._day, self._day_count = self._load()

    @property
    def enabled(self) -> bool:
        """True when any limit is set."""
        return bool(self.per_visitor_hourly or self.daily_cap)

    @staticmethod
    def _today() -> str:
        return datetime.now(timezone.utc).strftime("%Y-%m-%d")

    def _load(self) -> tuple[str, int]:
        today = self._today()
        if self.state_file is None:
            return today, 0
        try:
            data = json.loads(self.state_file.read_text(encoding="utf-8"))
            if data.get("day") == today and isinstance(data.get("count"), int):
                return today, data["count"]
        except (OSError, ValueError, AttributeError):
            pass
        return today, 0

    def _save(self) -> None:
        if self.state_file is None:
            return
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"day": self._day, "count": self._day_count}), encoding="utf-8")
        os.replace(tmp, self.state_file)

    def reserve(self, visitor: str, count: int) -> Reservation:
        """Reserve `count` images for a visitor, or raise LimitError saying which limit and when it resets."""
        now = time.time()
        with self._lock:
            today = self._today()
            if today != self._day:
                self._day, self._day_count = today, 0
            if self.daily_cap and self._day_count + count > self.daily_cap:
                left = max(0, self.daily_cap - self._day_count)
                raise LimitError(
                    f"本应用今日的生成额度已用完（每日 {self.daily_cap} 张，剩余 {left} 张），请明天再来，"
                    "或使用你自己的 API 密钥。",
                    f"This app's daily limit is reached ({self.daily_cap} images a day, {left} left); "
                    "come back tomorrow or use your own API key.",
                )
            stamps = self._visits.setdefault(visitor, deque())
            while stamps and stamps[0] <= now - HOUR:
                stamps.popleft()
            if self.per_visitor_hourly and len(stamps) + count > self.per_visitor_hourly:
                wait_min = max(1, int((stamps[0] + HOUR - now) // 60) + 1) if stamps else 60
                raise LimitError(
                    f"你在一小时内的生成次数已达上限（每小时 {self.per_visitor_hourly} 张），"
                    f"请约 {wait_min} 分钟后再试，或使用你自己的 API 密钥。",
                    f"You reached the hourly limit ({self.per_visitor_hourly} images per hour); "
                    f"try again in about {wait_min} min, or use your own API key.",
                )
            added = [now] * count
            stamps.extend(added)
            self._day_count += count
            self._save()
            return Reservation(visitor, count, self._day, added)

    def release(self, reservation: Reservation, used: int) -> None:
        """Give back the images of a reservation that were not generated."""
        unused = max(0, reservation.count - used)
        if not unused:
            return
        with self._lock:
            stamps = self._visits.get(reservation.visitor)
            for stamp in reservation.stamps[:unused]:
                if stamps and stamp in stamps:
                    stamps.remove(stamp)
            if reservation.day == self._day:
                self._day_count = max(0, self._day_count - unused)
                self._save()
