"""The manager: the library's public API (``connect``, ``Manager``), assembled from the layers below.

- ``lookups``: the lookup rules over the reader stack (rounds, remembered positions, budgets);
- ``stacks``: one reader stack per team over shared parts (the cache's partitions);
- ``build``: settings -> backend -> retry -> stacks -> ``Manager``.
"""

from .build import build_manager, connect
from .lookups import Manager, PathProbe, Resolved, Trace

__all__ = ["Manager", "PathProbe", "Resolved", "Trace", "build_manager", "connect"]
