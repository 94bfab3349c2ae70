"""A bounded HTTP probe loop for the lab tests: requests through the load balancer (what clients
see) and straight to each node (each node's own gap), counted while an operation runs."""

from __future__ import annotations

import http.client
import threading
import time
import urllib.request
from dataclasses import dataclass, field


def get(url: str, timeout: float = 5) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status == 200 and b"demo ok" in r.read()
    except (OSError, http.client.HTTPException):  # refused, reset, timed out, cut mid-body (IncompleteRead)
        return False


@dataclass
class Counts:
    ok: int = 0
    failed: int = 0
    gaps: list[float] = field(default_factory=list)  # seconds a target failed in a row


class Probe:
    """``with Probe({"lb": url, "h1": url1, ...}) as p: operation()`` then ``p.counts[name]``.
    Each round asks every target once (sequentially), every ``interval`` seconds, at most
    ``max_rounds`` rounds (bounded: a hung operation cannot make it run forever)."""

    def __init__(self, targets: dict[str, str], interval: float = 0.1, max_rounds: int = 20000):
        self.targets = targets
        self.interval = interval
        self.max_rounds = max_rounds
        self.counts = {n: Counts() for n in targets}
        self.rounds = 0
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._guarded, daemon=True)

    def _guarded(self) -> None:
        try:
            self._loop()
        except BaseException as e:  # re-raised by __exit__: a dead probe must not read as 0 failed
            self._error = e

    def _loop(self) -> None:
        down_since: dict[str, float | None] = {n: None for n in self.targets}
        while not self._stop.is_set() and self.rounds < self.max_rounds:
            for n, url in self.targets.items():
                good = get(url)
                c, now = self.counts[n], time.monotonic()
                if good:
                    c.ok += 1
                    if down_since[n] is not None:
                        c.gaps.append(now - down_since[n])
                        down_since[n] = None
                else:
                    c.failed += 1
                    down_since[n] = down_since[n] if down_since[n] is not None else now
            self.rounds += 1
            time.sleep(self.interval)
        for n, since in down_since.items():
            if since is not None:
                self.counts[n].gaps.append(time.monotonic() - since)

    def __enter__(self) -> "Probe":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        if self._error is not None:
            raise RuntimeError(f"the probe loop stopped after {self.rounds} rounds") from self._error

    def summary(self) -> str:
        return "; ".join(f"{n}: {c.ok} ok, {c.failed} failed, longest gap {max(c.gaps, default=0):.1f}s"
                         for n, c in self.counts.items())
