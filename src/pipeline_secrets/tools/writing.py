"""``put``: reading a secret's value from a file or stdin, checking it, storing it.

Why here and not in the CLI: the rules are the lookup's rules seen from the other side. A value
stored as JSON that is not an object stays a string; one that looks like JSON but does not parse
stays a string too, silently, and ``((name.field))`` then fails at the first build. Checking before
storing turns those into messages at the operator's desk. The value itself never appears in a
message: errors give positions and sizes only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import BinaryIO

from ..errors import LookupFailed, PipelineSecretsError, VarNameError, VarSyntaxError
from ..manager import Manager
from ..pure import vars as vars_
from .policy import WRITE_ACTIONS, exact_arn

MAX_SECRET_BYTES = 65536  # Secrets Manager's limit for a SecretString


class SecretValueError(PipelineSecretsError):
    """A value that cannot or should not be stored; the message never quotes it."""

    exit_status = 2


class PutRefused(PipelineSecretsError):
    """A name ``put`` will not write: one a lookup would refuse, or one with fields."""

    exit_status = 2


class WriteFailed(PipelineSecretsError):
    """AWS refused to store the secret; the message says which permission on which ARN helps."""


def secret_name(var: str) -> str:
    """The secret name of ``var`` (``((var))`` syntax, quotes allowed); it must name a whole
    secret, without ``.field`` or ``source:``. Raises ``PutRefused``."""
    try:
        ref = vars_.parse_var(var)
    except VarSyntaxError as exc:
        raise PutRefused(str(exc)) from None
    if ref.fields:
        raise PutRefused(
            f"'{var}' names a field of secret '{ref.path}': put stores whole secrets; "
            f"store a JSON object at '{ref.path}' with --json to give it fields"
        )
    if ref.source:
        raise PutRefused(f"'{var}' has a var source ('{ref.source}:'): give the secret name alone")
    return ref.path


def read_value(*, from_file: Path | None, stdin: BinaryIO | None) -> str:
    """The value from ``from_file`` (exactly as stored there) or ``stdin`` (one trailing newline
    dropped, so that ``echo value |`` stores ``value``); raises ``SecretValueError``."""
    try:
        if from_file is not None:
            return from_file.read_bytes().decode("utf-8")
        assert stdin is not None
        text = stdin.read().decode("utf-8")
    except UnicodeDecodeError:
        raise SecretValueError("the value is not UTF-8 text: Secrets Manager stores text (SecretString)") from None
    except OSError as exc:
        raise SecretValueError(f"cannot read '{from_file}': {exc.strerror}") from None
    return text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")


def check_value(value: str, *, as_json: bool) -> list[str]:
    """Raise ``SecretValueError`` for a value AWS would refuse or, with ``as_json``, one that is
    not a JSON object; return notes about how lookups will read the value."""
    if not value:
        raise SecretValueError("the value is empty: nothing to store")
    size = len(value.encode("utf-8"))
    if size > MAX_SECRET_BYTES:
        raise SecretValueError(f"the value is {size} bytes: Secrets Manager stores at most {MAX_SECRET_BYTES}")
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError) as exc:
        if as_json:
            # JSONDecodeError's msg/lineno/colno describe the position, never the text.
            where = (f" ({exc.msg} at line {exc.lineno} column {exc.colno})"
                     if isinstance(exc, json.JSONDecodeError) else "")
            raise SecretValueError(f"--json: the value is not valid JSON{where}") from None
        if value.lstrip().startswith("{"):
            return ["the value starts with '{' but is not valid JSON: it is stored as plain text, "
                    "and ((var.field)) will not work; use --json to have it checked"]
        return []
    if isinstance(parsed, dict):
        return [] if as_json else ["the value is a JSON object: lookups read it as a mapping of fields"]
    if as_json:
        raise SecretValueError(
            f"--json: the value is a JSON {type(parsed).__name__ if parsed is not None else 'null'}, not an object: "
            "only objects become fields; store other values without --json (they stay text)"
        )
    return []


def store(
    manager: Manager, name: str, value: str, *, team: str, pipeline: str | None, level: str
) -> tuple[str, str]:
    """Store ``value`` at ``name``'s ``level`` path; returns (path, ARN). AWS's refusals become
    ``WriteFailed`` saying what to allow."""
    try:
        return manager.put(name, value, team=team, pipeline=pipeline, level=level)
    except VarNameError as exc:
        raise PutRefused(str(exc)) from None
    except LookupFailed as exc:
        message = f"storing secret '{exc.path}' failed: {exc.reason}"
        if exc.kind == "access-denied":
            message += f"; allow {' and '.join(WRITE_ACTIONS)} on {exact_arn(exc.path, manager.settings.region)}"
        elif "deletion" in exc.detail:
            message += ("; restore it first (aws secretsmanager restore-secret --secret-id "
                        f"'{exc.path}') or wait until it is deleted")
        raise WriteFailed(message) from None
