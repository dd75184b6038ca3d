"""How ``check`` shows its progress and its reports: a rich progress bar and table on a terminal,
plain lines elsewhere (CI logs, pipes), JSON for machines.

Why rich: a bar that redraws in place is only right on a terminal, and rich knows when it is on
one; off a terminal the same calls degrade to plain text without escape codes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from .bulk import FileReport, summarize

Reporter = Callable[[FileReport], None]


@contextmanager
def progress(total: int, stream: TextIO, *, terminal: bool | None = None) -> Iterator[Reporter]:
    """A callback for each checked file: advances a bar when ``stream`` is a terminal, writes one
    plain line per file otherwise. ``terminal`` overrides the detection (tests)."""
    console = Console(file=stream, force_terminal=terminal, highlight=False)
    if not console.is_terminal:
        done = 0

        def line(report: FileReport) -> None:
            nonlocal done
            done += 1
            state = "ok" if report.ok else f"FAIL ({len(report.undefined)} undefined, {len(report.errors)} errors)"
            stream.write(f"[{done}/{total}] {report.file}: {state}\n")
            stream.flush()

        yield line
        return
    columns = (TextColumn("checking"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.description}"))
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("", total=total)
        yield lambda report: bar.update(task, advance=1, description=report.file)


def print_table(reports: Sequence[FileReport], stream: TextIO, *, lookup_paths: Sequence[str]) -> None:
    """The summary table (file, vars, undefined, errors), each error in full below it, and what
    to do next. Off a terminal the table is as wide as its content: nothing is cut or wrapped."""
    console = Console(file=stream, highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = 10_000
    table = Table(title="pipeline-secrets check", title_justify="left")
    table.add_column("file")
    table.add_column("vars", justify="right")
    table.add_column("undefined")
    table.add_column("errors", justify="right")
    table.add_column("result")
    for report in reports:
        result = "[green]ok[/]" if report.ok else "[bold red]FAIL[/]"
        table.add_row(Text(report.file), str(report.vars), Text(", ".join(report.undefined)), str(len(report.errors)),
                      result)
    console.print(table)
    for report in reports:
        for error in report.errors:
            console.print(f"{report.file}: {error}", markup=False)
    totals = summarize(reports)
    console.print(
        f"{totals['files']} files, {totals['vars']} vars: {totals['undefined']} undefined, "
        f"{totals['errors']} errors in {totals['failed_files']} files", markup=False)
    if totals["undefined"]:
        console.print("undefined vars were looked for at " + ", ".join(lookup_paths)
                      + "; store them with: pipeline-secrets put VAR --team TEAM [--pipeline PIPELINE]", markup=False)


def to_json(reports: Sequence[FileReport]) -> str:
    """Every report and the totals, keys sorted: stable for machines and diffs."""
    document = {"files": [r.as_dict() for r in reports], "summary": summarize(reports),
                "ok": all(r.ok for r in reports)}
    return json.dumps(document, sort_keys=True, indent=2)
