"""The budget of one document, and the flags that set it (messages name them)."""

from __future__ import annotations

from dataclasses import dataclass

MAX_BYTES_FLAG = "--max-document-bytes"
MAX_EXPANDED_BYTES_FLAG = "--max-expanded-bytes"
MAX_NODES_FLAG = "--max-document-nodes"
MAX_DEPTH_FLAG = "--max-document-depth"
MAX_VARS_FLAG = "--max-document-vars"
MAX_SECONDS_FLAG = "--document-timeout"

MIB = 1024 * 1024


@dataclass(frozen=True)
class DocumentLimits:
    """What one document may cost. Defaults fit large real pipelines (a few MB of YAML) while
    keeping one document's memory within tens of MB:

    - ``max_bytes``: the text itself;
    - ``max_expanded_bytes``: its scalars' text once aliases are expanded, and the interpolated
      output's text;
    - ``max_nodes``: scalars and collections, aliases expanded;
    - ``max_depth``: nesting, aliases included;
    - ``max_vars``: distinct ``((var))`` placeholders;
    - ``max_seconds``: each step of handling it (reading, interpolating, writing), a second wall
      behind the others should any step turn out slower than linear.
    """

    max_bytes: int = 10 * MIB
    max_expanded_bytes: int = 32 * MIB
    max_nodes: int = 250_000
    max_depth: int = 64
    max_vars: int = 500
    max_seconds: float = 20.0


DEFAULT_LIMITS = DocumentLimits()
