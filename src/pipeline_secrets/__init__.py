"""pipeline-secrets: resolve ((var)) placeholders in CI pipeline configuration from AWS Secrets
Manager, with Concourse's lookup rules (pipeline path, then team path).

    import pipeline_secrets
    manager = pipeline_secrets.connect(region="us-east-1")
    manager.lookup("creds.user", team="main", pipeline="deploy")

    redactor = pipeline_secrets.Redactor({"token": value})  # a command's output, values replaced
    out.write(redactor.feed(chunk)); ...; out.write(redactor.flush())

The layers, from the bottom (docs/architecture.md): ``pure`` (grammar, documents, templates),
``config``, ``aws``, ``resilience``, ``manager`` (this API), ``tools``, and the surfaces ``cli``,
``web`` and ``dev``.
"""

from ._version import __version__
from .config.roles import TeamRole
from .config.settings import Settings
from .errors import (
    CommandNotRun,
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
from .pure.redaction import Redactor

__all__ = [
    "CommandNotRun",
    "ConfigError",
    "DocumentError",
    "FieldError",
    "LimitError",
    "LookupFailed",
    "Manager",
    "PipelineSecretsError",
    "Redactor",
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
