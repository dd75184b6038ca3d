"""The tag PyYAML's resolver gives a plain scalar, remembered for short ones.

A pipeline's names, keys and flags come back in every document, read and written: the reader
asks once for each scalar, the emitter twice (plain, then quoted), and each answer is a
dictionary lookup and a few regular expressions: a fifth of reading and writing a document.
The answer depends on the text and the two ``implicit`` flags alone (the safe resolver has no
path resolvers), so it can be kept; at most ``MAX_REMEMBERED`` are, of at most
``MAX_REMEMBERED_CHARS`` characters each (longer texts are rarely repeated).
"""

from __future__ import annotations

import yaml
from yaml.resolver import Resolver

_RESOLVER = Resolver()
REMEMBERED: dict[tuple[str, bool, bool], str] = {}  # (text, implicit...) -> tag; read it, never write it
MAX_REMEMBERED = 8192
MAX_REMEMBERED_CHARS = 64


def resolve_scalar(value: str, implicit: tuple[bool, bool]) -> str:
    """``Resolver().resolve(yaml.ScalarNode, value, implicit)``."""
    if len(value) > MAX_REMEMBERED_CHARS:
        return _RESOLVER.resolve(yaml.ScalarNode, value, implicit)  # type: ignore[no-any-return]
    key = (value, implicit[0], implicit[1])
    tag = REMEMBERED.get(key)
    if tag is None:
        if len(REMEMBERED) >= MAX_REMEMBERED:
            REMEMBERED.clear()
        tag = REMEMBERED[key] = _RESOLVER.resolve(yaml.ScalarNode, value, implicit)
    return tag
