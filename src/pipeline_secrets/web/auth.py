"""Local users, their passwords and bearer tokens.

Passwords: every configured password is kept as a bcrypt hash (plain ones are hashed at start-up,
cost ``BCRYPT_ROUNDS``; a configured bcrypt hash is used as it is, as Concourse allows). A check
costs one bcrypt verification, which compares in constant time. An unknown user is checked against
a dummy hash of one of the costs in use, picked by a keyed hash of the name in proportion to how
many users have each cost: a name takes as long every time, as a real user's would, and unknown
names take as long as real ones overall, whatever mix of costs is configured. Passwords longer
than bcrypt's 72 bytes are refused, never truncated.

Verified Basic credentials are remembered for ``VERIFIED_TTL`` seconds, keyed by an HMAC (with a
key made at start-up) of user and password: a client sending Basic on every request pays bcrypt
once every few minutes, not per request. Only successes are remembered, so guessing always pays
bcrypt; a hit needs the right password, so the dict lookup reveals nothing.

Tokens: opaque random strings (256 bits) kept in memory with their user and expiry, stored under
their SHA-256. Chosen over signed tokens: nothing to forge and no signing key to manage or leak;
they can be forgotten (all die with the process, clients log in again). Alone, a node's tokens do
not survive a restart and are not shared; with the fleet's Redis tier (``shared``) each token is
also written there, hashed (``SharedTokens``), and every node accepts it until it expires; a node
remembers a shared token it has checked for ``SHARED_RECHECK`` seconds. Each user holds at most
``MAX_TOKENS_PER_USER`` live tokens: a new one beyond that replaces that user's oldest, never
another user's (users are configured, so all tokens together stay bounded).

``check_password`` blocks (bcrypt): call it from a worker thread.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping

import bcrypt

from ..errors import ConfigError
from ..resilience.shared_tokens import SharedTokens

BCRYPT_ROUNDS = 10  # ~80 ms per check on a laptop core; paid at start-up and once per VERIFIED_TTL
MAX_PASSWORD_BYTES = 72
MAX_USER_NAME_CHARS = 256  # longer names are nobody's: refused before any work or state
VERIFIED_TTL = 300.0
MAX_VERIFIED = 10_000
MAX_TOKENS_PER_USER = 100
MAX_TOKEN_CHARS = 256  # ours are 43; a longer one is nobody's
SHARED_RECHECK = 5.0  # a shared token checked in Redis is trusted this long by the node that asked
_BCRYPT_HASH = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")
_USER_NAME = re.compile(r"[^:\s]+")


def parse_local_user(spec: str, where: str) -> tuple[str, str]:
    """``USER:PASSWORD`` -> (user, password). The message never repeats the value (it may be a
    password without its user)."""
    user, sep, password = spec.partition(":")
    if not sep or not password or not _USER_NAME.fullmatch(user) or len(user) > MAX_USER_NAME_CHARS:
        raise ConfigError(f"{where}: each local user must be USER:PASSWORD (a user name without spaces, "
                          f"at most {MAX_USER_NAME_CHARS} characters, and a non-empty password)")
    return user, password


def bcrypt_cost(password: str) -> int | None:
    """The cost of a bcrypt hash, or None when ``password`` is not one."""
    match = _BCRYPT_HASH.fullmatch(password)
    return int(match.group(1)) if match and 4 <= int(match.group(1)) <= 31 else None


def hash_password(password: str, user: str) -> bytes:
    if bcrypt_cost(password) is not None:
        return password.encode("ascii")
    data = password.encode("utf-8")
    if len(data) > MAX_PASSWORD_BYTES:
        raise ConfigError(f"--add-local-user: the password of '{user}' is longer than {MAX_PASSWORD_BYTES} "
                          "bytes, bcrypt's limit")
    return bcrypt.hashpw(data, bcrypt.gensalt(BCRYPT_ROUNDS))


def hash_users(specs: Iterable[tuple[str, str]]) -> dict[str, bytes]:
    """user -> bcrypt hash; a user given twice is an error."""
    users: dict[str, bytes] = {}
    for user, password in specs:
        if user in users:
            raise ConfigError(f"--add-local-user: '{user}' is given more than once")
        users[user] = hash_password(password, user)
    return users


class Authenticator:
    """Checks passwords and issues and checks bearer tokens. Thread-safe."""

    def __init__(
        self, users: Mapping[str, bytes], *, token_duration: float, clock: Callable[[], float] = time.monotonic,
        shared: SharedTokens | None = None,
    ) -> None:
        self._users = dict(users)
        self._shared = shared
        self._seen_shared: dict[bytes, tuple[str, float]] = {}
        self.token_duration = token_duration
        self._clock = clock
        # One cost per user, sorted: an unknown name gets the cost of the user its keyed hash lands on.
        self._costs = sorted(int(h[4:6]) for h in self._users.values()) or [BCRYPT_ROUNDS]
        self._dummies = {
            cost: bcrypt.hashpw(secrets.token_bytes(16).hex().encode(), bcrypt.gensalt(cost))
            for cost in set(self._costs)
        }
        self._key = secrets.token_bytes(32)
        self._verified: dict[bytes, float] = {}
        self._tokens: dict[bytes, tuple[str, float]] = {}
        self._tokens_of: dict[str, OrderedDict[bytes, None]] = {}
        self._lock = threading.Lock()

    @property
    def users(self) -> list[str]:
        return sorted(self._users)

    def knows(self, user: str) -> bool:
        """True when ``user`` is configured (only the admission queue's shares depend on it)."""
        return user in self._users

    def credential_key(self, user: str, password: str) -> bytes:
        """The key under which a verified user:password pair is remembered (a keyed hash under this
        process's random key, not the password). Keyed BLAKE2b is a MAC by design (RFC 7693) and
        is computed in one call without OpenSSL: a fraction of HMAC-SHA256's cost per request."""
        data = user.encode("utf-8", "surrogatepass") + b"\0" + password.encode("utf-8", "surrogatepass")
        return hashlib.blake2b(data, key=self._key, digest_size=32).digest()

    def remembered(self, key: bytes) -> bool:
        """True when this pair was verified less than ``VERIFIED_TTL`` seconds ago. Never blocks."""
        with self._lock:
            until = self._verified.get(key)
        return until is not None and until > self._clock()

    def check_password(self, user: str, password: str) -> bool:
        """True when ``password`` is ``user``'s. Blocking (bcrypt) unless remembered."""
        key = self.credential_key(user, password)
        if self.remembered(key):
            return True
        data = password.encode("utf-8", "surrogatepass")
        stored = self._users.get(user)
        if stored is None or len(data) > MAX_PASSWORD_BYTES:
            bcrypt.checkpw(b"not-the-password", self.dummy_hash(user))  # the same work, always refused
            return False
        if not bcrypt.checkpw(data, stored):
            return False
        now = self._clock()
        with self._lock:
            if len(self._verified) >= MAX_VERIFIED:
                self._verified = {k: v for k, v in self._verified.items() if v > now}
                if len(self._verified) >= MAX_VERIFIED:
                    self._verified.clear()
            self._verified[key] = now + VERIFIED_TTL
        return True

    def dummy_hash(self, user: str) -> bytes:
        """The hash an unknown ``user`` is checked against: always the same one for a name."""
        digest = hmac.new(self._key, b"cost\0" + user.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
        return self._dummies[self._costs[int.from_bytes(digest[:8], "big") % len(self._costs)]]

    def issue_token(self, user: str) -> str:
        token = secrets.token_urlsafe(32)
        key = _token_key(token)
        now = self._clock()
        with self._lock:
            mine = self._tokens_of.setdefault(user, OrderedDict())
            for old in [k for k in mine if self._tokens[k][1] <= now]:
                del mine[old], self._tokens[old]
            while len(mine) >= MAX_TOKENS_PER_USER:  # this user's oldest goes, nobody else's
                old, _ = mine.popitem(last=False)
                del self._tokens[old]
            mine[key] = None
            self._tokens[key] = (user, now + self.token_duration)
        if self._shared is not None:
            self._shared.add(key, user, self.token_duration)
        return token

    def token_count(self, user: str | None = None) -> int:
        with self._lock:
            return len(self._tokens) if user is None else len(self._tokens_of.get(user, ()))

    @property
    def shares_tokens(self) -> bool:
        """True when tokens of other nodes may be accepted (the fleet's Redis tier)."""
        return self._shared is not None

    def user_for_token(self, token: str, *, ask_shared: bool = True) -> str | None:
        """The user of a live token, or None (unknown or expired). From memory, then (unless
        ``ask_shared`` is False: memory only, never blocking) from the fleet's shared tokens,
        which blocks on Redis: not on an event loop."""
        if len(token) > MAX_TOKEN_CHARS:
            return None
        key = _token_key(token)
        now = self._clock()
        with self._lock:
            entry = self._tokens.get(key)
            if entry is not None:
                if entry[1] > now:
                    return entry[0]
                del self._tokens[key]
                self._tokens_of[entry[0]].pop(key, None)
                return None
            seen = self._seen_shared.get(key)
            if seen is not None and seen[1] > now:
                return seen[0]
        if self._shared is None or not ask_shared:
            return None
        shared = self._shared.user_of(key)  # Redis: outside the lock
        with self._lock:
            if shared is None or shared[0] not in self._users:
                self._seen_shared.pop(key, None)
                return None
            user, left = shared
            if len(self._seen_shared) >= MAX_VERIFIED:
                self._seen_shared = {k: v for k, v in self._seen_shared.items() if v[1] > now}
                if len(self._seen_shared) >= MAX_VERIFIED:
                    self._seen_shared.clear()
            self._seen_shared[key] = (user, now + min(SHARED_RECHECK, left))
            return user


def _token_key(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
