"""The exceptions of pipeline-secrets, all under one base class.

Every message here is written for an operator and is safe to log: none carries a secret value.
``exit_status`` is what the CLI exits with: 2 for usage and configuration, 1 for lookups.
"""

from __future__ import annotations

from collections.abc import Iterable


class PipelineSecretsError(Exception):
    """Base class of every error this package raises on purpose."""

    exit_status = 1


class ConfigError(PipelineSecretsError):
    """Invalid configuration: a flag, an environment variable or a library option."""

    exit_status = 2


class DocumentError(PipelineSecretsError):
    """The input document cannot be read: invalid YAML, or too large once aliases are expanded."""

    exit_status = 2


class LimitError(DocumentError):
    """Input over one of its budgets (bytes, expanded bytes, nodes, depth, vars, AWS reads); the
    message names the limit's flag."""


class VarSyntaxError(PipelineSecretsError):
    """A ``((var))`` that does not follow the grammar."""


class VarSourceError(PipelineSecretsError):
    """A ``((source:var))`` whose source the document does not declare in its ``var_sources``:
    ``missing source 'src' in var: src:name``."""


class VarSourceConfigError(VarSourceError):
    """A ``var_sources`` declaration we cannot use: not a list of ``name``/``type``/``config``, a
    type we do not support, a config key the type does not have, a source that would read outside
    the pipeline's team without credentials of its own."""

    exit_status = 2


class VarNameError(PipelineSecretsError):
    """A var name that may not be looked up: outside Secrets Manager's name rules, or one that
    would reach another team's or another pipeline's secret."""


class ScopeNameError(PipelineSecretsError):
    """A team or pipeline name that cannot be part of a secret path."""

    exit_status = 2


class FieldError(PipelineSecretsError):
    """A ``.field`` of a var that does not exist in the secret's value, or a value that cannot be
    placed where the var stands."""


class UndefinedVarsError(PipelineSecretsError):
    """Vars that no candidate path holds."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names: tuple[str, ...] = tuple(sorted(set(names)))
        super().__init__("undefined vars: " + ", ".join(self.names))


class LookupFailed(PipelineSecretsError):
    """AWS did not answer found or not found for a path: access denied, throttled, unreachable...

    ``kind`` is a short, stable classification (``access-denied``, ``throttled``, ``unavailable``,
    ``network``, ``decryption``, ``credentials``, ``invalid-value``, ``assume-role``, ``error``); ``code`` is AWS's
    error code when there is one. ``retryable`` says whether trying again may help.
    """

    def __init__(
        self,
        path: str,
        kind: str,
        detail: str,
        *,
        code: str | None = None,
        retryable: bool = False,
        attempts: int = 1,
    ) -> None:
        self.path = path
        self.kind = kind
        self.detail = detail
        self.code = code
        self.retryable = retryable
        self.attempts = attempts
        super().__init__(self._message())

    @property
    def reason(self) -> str:
        """What AWS (or the client) said: ``Code: message``, or the message alone."""
        return f"{self.code}: {self.detail}" if self.code else self.detail

    def _message(self) -> str:
        return f"reading secret '{self.path}' failed{self._tries()}: {self.reason}"

    def public_message(self) -> str:
        """The message without AWS's own text (which names endpoints, accounts and identities):
        for answers to clients who are not operators, such as a web node's team members."""
        return f"reading secret '{self.path}' failed{self._tries()}: {self.kind}"

    def _tries(self) -> str:
        return f" (after {self.attempts} attempts)" if self.attempts > 1 else ""

    def for_path(self, path: str) -> LookupFailed:
        """The same failure, of ``path`` (one cause failing every path of a call)."""
        return LookupFailed(path, self.kind, self.detail, code=self.code, retryable=self.retryable,
                            attempts=self.attempts)

    def after_attempts(self, attempts: int) -> LookupFailed:
        """The same failure, saying how many attempts were made."""
        return LookupFailed(
            self.path, self.kind, self.detail, code=self.code, retryable=self.retryable, attempts=attempts
        )


class CommandNotRun(PipelineSecretsError):
    """``exec`` could not start the command: not found (exit 127, as a shell does) or not
    executable (126)."""

    def __init__(self, message: str, exit_status: int) -> None:
        super().__init__(message)
        self.exit_status = exit_status
