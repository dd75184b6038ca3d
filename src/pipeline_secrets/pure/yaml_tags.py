"""The tag PyYAML's resolver gives a scalar, without the resolver's method call.

The reader asks once for each plain scalar, the emitter twice for every scalar it writes, and
``Resolver.resolve`` is a method call, a list concatenation and path-resolver checks before the
regular expressions it is for: a fifth of reading and writing a document. ``resolve_scalar``
does only the part that decides a scalar's tag (the implicit resolvers of its first character,
in PyYAML's order), and is checked against the resolver itself (tests/test_documents.py).

Nothing is remembered between calls, deliberately: a table shared by the process would hold the
values written (secrets among them), and how fast it answers would tell one team what another
team's documents had put in it (attack review 15).
"""

from __future__ import annotations

from yaml.resolver import Resolver

STR_TAG = "tag:yaml.org,2002:str"
# first character -> [(tag, pattern)], as the safe resolver keeps them; it has no path resolvers
# and no resolvers for any first character (None), which is what makes this shortcut exact.
IMPLICIT: dict[str, list[tuple[str, object]]] = {
    first: list(resolvers) for first, resolvers in Resolver.yaml_implicit_resolvers.items() if first is not None
}
assert None not in Resolver.yaml_implicit_resolvers and not Resolver.yaml_path_resolvers


def resolve_scalar(value: str, implicit: tuple[bool, bool]) -> str:
    """``Resolver().resolve(yaml.ScalarNode, value, implicit)``."""
    if implicit[0]:
        for tag, pattern in IMPLICIT.get(value[:1], ()):
            if pattern.match(value):  # type: ignore[attr-defined]
                return tag
    return STR_TAG
