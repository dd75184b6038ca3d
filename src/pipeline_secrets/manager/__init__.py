"""The manager: the library's public API (``connect``, ``Manager``), assembled from the layers below.

- ``library``: ``Manager``, the public API;
- ``lookups``: the lookup rules over a reader stack (rounds, remembered positions, budgets);
- ``documents``: a whole document's vars, the cluster's and its var sources';
- ``sources``: the var sources a document declares (``dummy``, ``secretsmanager``);
- ``stacks``: one reader stack per team over shared parts (the cache's partitions);
- ``build``: settings -> backend -> retry -> stacks -> ``Manager``.
"""

from .build import build_manager, connect
from .documents import DocumentVars, key_label
from .library import Manager
from .lookups import PathProbe, Resolved, Trace

__all__ = ["DocumentVars", "Manager", "PathProbe", "Resolved", "Trace", "build_manager", "connect", "key_label"]
