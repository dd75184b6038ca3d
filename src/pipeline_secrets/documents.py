"""Reading and writing pipeline documents (YAML, and so JSON) without letting aliases blow up.

PyYAML shares the object behind an alias, so an "alias bomb" (a billion laughs) is small in memory
once loaded but enormous to walk or to print. We compose the node graph first, measure the size it
expands to, and refuse documents past ``MAX_EXPANDED_NODES`` before constructing anything.
"""

from __future__ import annotations

from typing import Any

import yaml

from .errors import DocumentError

MAX_EXPANDED_NODES = 1_000_000

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BaseDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Dumper(_BaseDumper):  # type: ignore[misc, valid-type]
    """Writes every value in full: no ``&id001`` anchors for values that happen to be shared."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    # Multi-line values (keys, certificates) read best as literal blocks.
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None)


_Dumper.add_representer(str, _represent_str)


def load_document(text: str, *, max_nodes: int = MAX_EXPANDED_NODES) -> Any:
    """Parse one YAML document; raises ``DocumentError`` for invalid YAML or an alias bomb."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expanded_size(node, max_nodes)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise DocumentError(f"invalid YAML: {exc}") from None
    except (ValueError, TypeError, AttributeError) as exc:
        # PyYAML's constructors raise plain errors for scalars they resolve but cannot build:
        # an impossible date (2024-13-45), `!!int abc`, `!!timestamp foo`.
        raise DocumentError(f"invalid YAML: cannot construct a value: {exc}") from None
    finally:
        loader.dispose()


def dump_document(document: Any) -> str:
    """YAML text in the document's own key order."""
    return yaml.dump(
        document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False, width=1 << 30
    )


def _check_expanded_size(root: yaml.Node, max_nodes: int) -> None:
    # Iterative post-order walk with memoised sizes: linear in the node graph, however deep.
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[key] > max_nodes:
                raise DocumentError(
                    f"document too large: it expands to more than {max_nodes:,} nodes "
                    "(YAML aliases included)"
                )
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise DocumentError("invalid YAML: a recursive alias refers to itself")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []
