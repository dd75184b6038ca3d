"""pipeline-secrets: resolve ((var)) placeholders in CI pipeline configuration from AWS Secrets
Manager, with Concourse's lookup rules (pipeline path, then team path).

    import pipeline_secrets
    manager = pipeline_secrets.connect(region="us-east-1")
    manager.lookup("creds.user", team="main", pipeline="deploy")

The layers, from the bottom (docs/architecture.md): ``pure`` (grammar, documents, templates),
``config``, ``aws``, ``resilience``, ``manager`` (this API), ``tools``, and the surfaces ``cli``,
``web`` and ``dev``.
"""

from ._version import __version__
from .config.roles import TeamRole
from .config.settings import Settings
from .errors import (
    ConfigError,
    DocumentError,
    FieldError,
    LimitError,
    LookupFailed,
    PipelineSecretsError,
    ScopeNameError,
    UndefinedVarsError,
    VarNameError,
    VarSourceConfigError,
    VarSourceError,
    VarSyntaxError,
)
from .manager import Manager, connect
from .pure import documents

__all__ = [
    "ConfigError",
    "DocumentError",
    "FieldError",
    "LimitError",
    "LookupFailed",
    "Manager",
    "PipelineSecretsError",
    "ScopeNameError",
    "Settings",
    "TeamRole",
    "UndefinedVarsError",
    "VarNameError",
    "VarSourceConfigError",
    "VarSourceError",
    "VarSyntaxError",
    "__version__",
    "connect",
    "documents",
]
