"""Configuration, parsed and validated once into an immutable ``Settings`` that every layer
below the surfaces is given: one option table feeds the flags, the environment variables and the
library's keywords.

- ``settings``: the option table, ``Settings`` and ``resolve_settings``;
- ``durations``: Go's duration syntax, as Concourse's flags take it.
"""

from .settings import OPTIONS, Settings, resolve_settings

__all__ = ["OPTIONS", "Settings", "resolve_settings"]
