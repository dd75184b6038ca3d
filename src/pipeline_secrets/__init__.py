"""pipeline-secrets: resolve ((var)) placeholders in CI pipeline configuration from AWS Secrets
Manager, with Concourse's lookup rules (pipeline path, then team path).

    import pipeline_secrets
    manager = pipeline_secrets.connect(region="us-east-1")
    manager.lookup("creds.user", team="main", pipeline="deploy")
"""

from ._version import __version__
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
    VarSyntaxError,
)
from .manager import Manager, connect
from .settings import Settings

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
    "UndefinedVarsError",
    "VarNameError",
    "VarSyntaxError",
    "__version__",
    "connect",
]
