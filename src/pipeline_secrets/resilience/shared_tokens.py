"""Bearer tokens shared by the fleet: a token issued by one node works on every node until it
expires.

Redis holds, per token, ``ps:token:<HMAC(SHA-256(token))>`` -> the user, sealed, expiring with the
token (PX); and per user, ``ps:tokens:<HMAC(user)>``, a sorted set of that user's token keys by
expiry, so each user keeps at most ``per_user`` live tokens (a new one beyond that drops that
user's oldest, never another user's). Neither a token nor its plain digest, nor a user name, is
in Redis in clear.

When Redis is down, ``add`` and ``user_of`` answer as if nothing were shared (the caller keeps its
own tokens): tokens then work on the node that issued them only, until Redis is back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .redis_tier import RedisTier


class SharedTokens:
    def __init__(self, tier: RedisTier, *, per_user: int, clock: Callable[[], float] = time.time) -> None:
        self._tier = tier
        self._per_user = per_user
        self._clock = clock

    def add(self, token_digest: bytes, user: str, lifetime: float) -> None:
        """Share a token (by its SHA-256) of ``user`` for ``lifetime`` seconds."""
        sealer = self._tier.sealer
        key = sealer.name("token", token_digest.hex())
        mine = sealer.name("tokens", user)
        now = self._clock()
        expires = now + lifetime
        sealed = sealer.seal(key, [user, expires])
        ttl_ms = max(1, int(lifetime * 1000))

        def store(r: Any) -> None:
            pipe = r.pipeline(transaction=True)
            pipe.set(key, sealed, px=ttl_ms)
            pipe.zremrangebyscore(mine, "-inf", now)
            pipe.zadd(mine, {key: expires})
            pipe.zcard(mine)
            pipe.pexpire(mine, ttl_ms)
            count = pipe.execute()[3]
            if count > self._per_user:
                dropped = [member for member, _ in r.zpopmin(mine, count - self._per_user)]
                if dropped:
                    r.delete(*dropped)

        self._tier.call(store, None)

    def user_of(self, token_digest: bytes) -> tuple[str, float] | None:
        """(user, seconds left) of a live shared token, or None (unknown, expired, not ours, or
        no Redis)."""
        sealer = self._tier.sealer
        keys = sealer.names("token", token_digest.hex())
        values = self._tier.call(lambda r: r.mget(keys), None)
        if not isinstance(values, list):
            return None
        for index, (key, value) in enumerate(zip(keys, values)):
            opened = sealer.open(key, value, index)
            if (isinstance(opened, list) and len(opened) == 2 and isinstance(opened[0], str)
                    and isinstance(opened[1], (int, float)) and opened[1] > self._clock()):
                return opened[0], opened[1] - self._clock()
        return None
