"""Environment mappings: ``NAME -> text with ((vars))``, checked, and their resolved values as the
strings an environment holds (``exec``, the web node's ``vars/env``)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from ..errors import DocumentError, FieldError

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_ENV_NAME_CHARS = 256


def check_env_name(name: object, origin: str = "") -> str:
    """``name`` when it is a portable environment variable name (letters, digits and ``_``, not
    starting with a digit: POSIX's rule, and what shells can read); ``DocumentError`` otherwise."""
    where = f"{origin}: " if origin else ""
    if not isinstance(name, str):
        raise DocumentError(f"{where}environment variable names must be strings, not {_type_name(name)}")
    if len(name) > MAX_ENV_NAME_CHARS or not _ENV_NAME.fullmatch(name):
        shown = name if len(name) <= 64 else name[:64] + "..."
        raise DocumentError(f"{where}invalid environment variable name {shown!r}: use letters, digits and _, "
                            "not starting with a digit")
    return name


def env_mapping(document: Any, origin: str = "the environment mapping") -> dict[str, str]:
    """A document that maps environment variable names to strings (with ``((vars))`` in them),
    as a dict; ``DocumentError`` naming the entry otherwise. Values must be strings: ``PORT:
    5432`` is refused rather than guessed at (quote it)."""
    if not isinstance(document, dict):
        raise DocumentError(f"{origin} must be a mapping of environment variable names to strings, "
                            f"not {_type_name(document)}")
    out = {}
    for name, value in document.items():
        check_env_name(name, origin)
        if not isinstance(value, str):
            raise DocumentError(f"{origin}: the value of {name} must be a string, not {_type_name(value)} "
                                "(quote it)")
        out[name] = value
    return out


def env_text(name: str, value: Any) -> str:
    """A resolved value as an environment holds it: a string as it is, anything else (a var that
    is a mapping, a number) as JSON, as ``lookup`` prints it. ``FieldError`` for a NUL character
    or a lone surrogate (from a JSON ``"\\ud800"``), which no environment variable can hold."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if "\0" in text:
        raise FieldError(f"the value of {name} contains a NUL character, which an environment variable cannot hold")
    try:
        text.encode("utf-8", "surrogateescape")  # what os.fsencode does to an environment
    except UnicodeEncodeError:
        raise FieldError(f"the value of {name} holds half a UTF-16 surrogate pair, which an environment variable "
                         "cannot hold") from None
    return text


def string_leaves(value: Any, label: str) -> Iterator[tuple[str, str]]:
    """(``label.key...``, text) for every string or number inside a mapping or list value: the
    parts a program may print on their own (a PIN is a number in JSON)."""
    if isinstance(value, str):
        yield label, value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield label, json.dumps(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from string_leaves(item, f"{label}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from string_leaves(item, f"{label}[{index}]")


def _type_name(value: object) -> str:
    return {dict: "a mapping", list: "a list", type(None): "null"}.get(type(value), type(value).__name__)
