"""The AWS rate budget (``--aws-rate-limit``): a token bucket per operation, shared by the fleet.

AWS counts quotas per operation (GetSecretValue and BatchGetSecretValue have their own), so each
operation has its own bucket at the configured rate, with a second's worth of burst. A call takes a
token before it goes out; with none left it waits for one (a lookup waits within its deadline
instead of being throttled by AWS), and when the wait would pass the deadline the call is not made
and the lookup fails as throttled, saying why.

With Redis the bucket lives there, behind one Lua script that refills, reserves and answers the wait
atomically (Redis's own clock, so nodes' clocks do not matter): N nodes share one budget. A token is
reserved, not polled for, so waiters are served in the order they asked. Without Redis, or while it
is down, each process keeps the same bucket in memory.

One team may not spend the whole budget: each team's cache misses also take tokens from that
team's own bucket, at ``TEAM_SHARE`` of the rate (``TeamShare``, below each team's cache), so a
team that floods AWS with names it never used waits for its own tokens while the others still find
the shared bucket's. A team's bucket is counted in calls of either operation, as many as its
request can make (a batch of 500 ids is 25 BatchGetSecretValue calls), taken in pieces of a second's
worth within the lookup's deadline; it covers the team's var sources too.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..aws.backend import SecretReader
from ..errors import LookupFailed
from ..metrics import Metrics
from .redis_tier import RedisTier

# KEYS[1]: the bucket; ARGV: rate (tokens/s), capacity, the longest wait accepted (s), tokens wanted.
# Returns the wait in seconds as a string (Lua numbers become integers in Redis replies), or "-1".
_TAKE = """
local rate, capacity, max_wait, wanted = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or capacity
local ts = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens < wanted then wait = (wanted - tokens) / rate end
if wait > max_wait then
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
  return '-1'
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - wanted), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity / rate + wait) * 1000) + 1000)
return tostring(wait)
"""


class _LocalBucket:
    def __init__(self, rate: float, capacity: float, clock: Callable[[], float]) -> None:
        self._rate, self._capacity, self._clock = rate, capacity, clock
        self._tokens, self._updated = capacity, clock()
        self._lock = threading.Lock()

    def reserve(self, max_wait: float, wanted: float) -> float | None:
        with self._lock:
            now = self._clock()
            self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self._rate)
            self._updated = now
            wait = 0.0 if self._tokens >= wanted else (wanted - self._tokens) / self._rate
            if wait > max_wait:
                return None
            self._tokens -= wanted
            return wait


TEAM_SHARE = 0.5  # of the rate, per team


class RateBudget:
    """``take(operation)`` before each AWS call; ``take_team(team, calls)`` before a team's cache
    misses go down. Thread-safe."""

    def __init__(
        self, rate: float, *, max_wait: float, metrics: Metrics, tier: RedisTier | None = None,
        clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self._max_wait = max_wait
        self._metrics = metrics
        self._tier = tier
        self._sleep = sleep
        self._clock = clock
        self._local: dict[str, _LocalBucket] = {}
        self._lock = threading.Lock()
        self._script = tier.client.register_script(_TAKE) if tier is not None else None

    def take(self, operation: str) -> bool:
        """Wait for a token of ``operation``'s bucket; False when none comes within the deadline."""
        return self._take(operation, operation, self.rate, 1)

    def take_team(self, team: str, calls: int) -> bool:
        """Wait for ``calls`` tokens of ``team``'s share (in pieces of at most a second's worth,
        all within the one deadline); False when they do not come in time."""
        key = "team:" + self._team_key(team)
        rate = self.rate * TEAM_SHARE
        left, give_up_at = max(1, calls), self._clock() + self._max_wait
        while left > 0:
            piece = min(left, max(1.0, rate))
            if not self._take(key, "team share", rate, piece, max(0.0, give_up_at - self._clock())):
                return False
            left -= piece
        return True

    def _team_key(self, team: str) -> str:
        if self._tier is not None:  # keyed like every name in Redis: a team name is not in clear there
            return self._tier.sealer.name("budget", team).rpartition(":")[2][:32]
        return hashlib.sha256(team.encode("utf-8", "surrogatepass")).hexdigest()[:32]

    def _take(self, key: str, label: str, rate: float, wanted: float, max_wait: float | None = None) -> bool:
        wait = self._reserve(key, rate, wanted, self._max_wait if max_wait is None else max_wait)
        if wait is None:
            self._metrics.budget_refused.inc()
            return False
        if wait > 0:
            self._metrics.budget_waits.labels(label).inc()
            self._metrics.budget_wait_seconds.inc(wait)
            self._sleep(wait)
        return True

    def _reserve(self, key: str, rate: float, wanted: float, max_wait: float) -> float | None:
        capacity = max(1.0, rate)  # a second's worth of burst
        if self._tier is not None and self._script is not None:
            script = self._script
            answer = self._tier.call(
                lambda r: script(keys=[f"ps:budget:{key}"], args=[rate, capacity, max_wait, wanted], client=r),
                None,
            )
            if answer is not None:
                wait = float(answer)
                return None if wait < 0 else wait
        with self._lock:
            bucket = self._local.get(key)
            if bucket is None:
                bucket = self._local[key] = _LocalBucket(rate, capacity, self._clock)
                if len(self._local) > MAX_LOCAL_BUCKETS:
                    self._local.pop(next(iter(self._local)))
        return bucket.reserve(max_wait, wanted)


MAX_LOCAL_BUCKETS = 10_000  # operations and teams; the oldest goes (it comes back full)


class TeamShare:
    """A ``SecretReader`` wrapper taking one team's share of the budget before its reads go down:
    one token per AWS call they can make (``calls_for`` a number of paths)."""

    def __init__(self, inner: SecretReader, budget: RateBudget, team: str, calls_for: Callable[[int], int]) -> None:
        self._inner = inner
        self._budget = budget
        self._team = team
        self._calls_for = calls_for

    def get(self, path: str) -> Any | None:
        if not self._budget.take_team(self._team, 1):
            raise _over_share(path)
        return self._inner.get(path)

    def get_many(self, paths: Sequence[str]) -> dict[str, Any]:
        if not paths:
            return {}
        if not self._budget.take_team(self._team, self._calls_for(len(paths))):
            return {path: _over_share(path) for path in paths}
        return self._inner.get_many(paths)


def _over_share(path: str) -> LookupFailed:
    return LookupFailed(path, "throttled", "this team's share of the AWS rate budget (--aws-rate-limit) is spent "
                        "for now; no call was made")
