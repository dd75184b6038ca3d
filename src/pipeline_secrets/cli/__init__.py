"""The ``pipeline-secrets`` command: parse flags, call the manager, render the answer.

Exit status: 0 success, 1 undefined var or lookup failure, 2 usage or configuration error.

- ``options``: the flags and error handling every command shares;
- ``lookups``: ``lookup``, ``interpolate``, ``health``;
- ``tools``: the operator tools (``iam-policy``, ``paths``, ``check-access``, ``put``, ``invalidate``, ``check``);
- ``execute``: ``exec``, a command run with secrets in its environment, its output redacted;
- ``webnode``: ``web``, the web node.
"""

from __future__ import annotations

import click

from .._version import __version__
from .execute import exec_command
from .lookups import health, interpolate, lookup
from .tools import check, check_access_command, iam_policy, invalidate, paths_command, put
from .webnode import web


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="pipeline-secrets")
def main() -> None:
    """Resolve ((var)) placeholders in CI pipeline configuration from AWS Secrets Manager, with
    Concourse's lookup rules: the pipeline path first, then the team path (then a shared path,
    when configured)."""


for command in (lookup, interpolate, exec_command, health, iam_policy, paths_command, check_access_command, put,
                invalidate, check, web):
    main.add_command(command)
