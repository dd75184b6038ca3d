"""What makes Redis safe to share: it never holds a secret value or a secret name in clear.

A Redis key is ``ps:<kind>:<HMAC-SHA256(name)>``; a value is AES-256-GCM over the entry, with the
Redis key as associated data, so a value copied under another key, written with another cluster's
key or garbled on the way fails to authenticate and reads as a miss: never an error, never a wrong
value. The keys (32 random bytes each, from ``--redis-encryption-key-file``) are used through HKDF,
one sub-key for naming and one for sealing. Rotation: the first key names and seals what is
written; every key is tried to read, so a fleet can move to a new key without a cold cache.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE_BYTES = 12


@dataclass(frozen=True)
class _Keys:
    naming: bytes
    sealing: AESGCM


def _derive(key: bytes) -> _Keys:
    def sub(label: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"pipeline-secrets/" + label).derive(key)

    return _Keys(sub(b"naming"), AESGCM(sub(b"sealing")))


class Sealer:
    """Names and seals what the tier writes; every configured key opens."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("at least one key")
        self._keys = [_derive(key) for key in keys]

    def names(self, kind: str, name: str) -> list[str]:
        """The Redis keys ``name`` may be stored under, one per key: the first is where it is
        written."""
        data = name.encode("utf-8", "surrogatepass")
        return [f"ps:{kind}:" + hmac.new(k.naming, kind.encode() + b"\0" + data, hashlib.sha256).hexdigest()
                for k in self._keys]

    def name(self, kind: str, name: str) -> str:
        return self.names(kind, name)[0]

    def seal(self, redis_key: str, value: Any) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        plain = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return nonce + self._keys[0].sealing.encrypt(nonce, plain, redis_key.encode())

    def open(self, redis_key: str, sealed: bytes | None, key_index: int) -> Any | None:
        """The value sealed under ``redis_key`` with key ``key_index``, or None when it is missing,
        not ours, altered or garbled."""
        if not isinstance(sealed, bytes) or len(sealed) <= NONCE_BYTES or key_index >= len(self._keys):
            return None
        try:
            plain = self._keys[key_index].sealing.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:],
                                                          redis_key.encode())
            return json.loads(plain)
        except (InvalidTag, ValueError):
            return None

    def seal_message(self, value: Any) -> bytes:
        """A pub/sub message only our fleet can read (it may name secrets)."""
        return self.seal("ps:message", value)

    def open_message(self, sealed: bytes) -> Any | None:
        for index in range(len(self._keys)):
            value = self.open("ps:message", sealed, index)
            if value is not None:
                return value
        return None
