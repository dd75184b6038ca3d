"""The keys that seal what the shared tier (Redis) holds, read from ``--redis-encryption-key-file``."""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from ..errors import ConfigError

KEY_BYTES = 32
KEY_FILE_FLAG = "--redis-encryption-key-file"


def read_key_file(path: Path) -> bytes:
    """The 32 key bytes of a key file (base64 text); ``ConfigError`` naming the flag otherwise.
    The message never quotes the file's content."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{KEY_FILE_FLAG}: cannot read '{path}': {getattr(exc, 'strerror', None) or exc}") from None
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{KEY_FILE_FLAG}: '{path}' must hold {KEY_BYTES} random bytes in base64 "
                          "(e.g. `head -c 32 /dev/urandom | base64`)") from None
    if len(key) != KEY_BYTES:
        raise ConfigError(f"{KEY_FILE_FLAG}: '{path}' holds {len(key)} bytes, not {KEY_BYTES}")
    return key


def new_key_text() -> str:
    """A fresh key, as a key file holds it."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")
