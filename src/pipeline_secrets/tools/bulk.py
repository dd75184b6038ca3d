"""``check``: are the vars of many pipeline files resolvable? One report per file.

Why: an undefined var or a denied path shows up at the first build that needs it, one pipeline
at a time. Checking every file of a repository at once, before ``fly set-pipeline``, turns that
into one list. Each file is checked as ``interpolate`` would resolve it, but nothing is printed
from a value: a report holds names, counts and error messages only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import PipelineSecretsError
from ..manager import Manager, key_label
from ..pure import vars as vars_
from ..pure.documents import load_document
from .reading import read_text

PIPELINE_SUFFIXES = (".yml", ".yaml")


class NoPipelineFiles(PipelineSecretsError):
    """The arguments name no pipeline file at all: a usage mistake, not a failed check."""

    exit_status = 2


@dataclass
class FileReport:
    """What checking one file found. ``vars`` counts distinct secret names."""

    file: str
    pipeline: str | None
    vars: int = 0
    undefined: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.undefined and not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "pipeline": self.pipeline, "vars": self.vars, "undefined": self.undefined,
                "errors": self.errors, "ok": self.ok}


def pipeline_files(paths: Iterable[Path]) -> list[Path]:
    """Files as given, directories expanded to their ``*.yml``/``*.yaml`` files at any depth,
    sorted and without repeats. Raises ``NoPipelineFiles`` when nothing is left."""
    found: dict[Path, None] = {}
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix in PIPELINE_SUFFIXES and p.is_file())
            found.update(dict.fromkeys(files))
        else:
            found[path] = None
    if not found:
        raise NoPipelineFiles("no pipeline files (*.yml, *.yaml) found in " + ", ".join(f"'{p}'" for p in paths))
    return list(found)


def check_file(manager: Manager, file: Path, *, team: str, pipeline: str | None) -> FileReport:
    """Resolve every var of ``file`` for ``team``/``pipeline``: which are undefined, which fail,
    which name a missing field. A file that cannot be read or parsed is one error, not an
    exception, so one bad file does not hide the others' results."""
    report = FileReport(str(file), pipeline)
    try:
        document = load_document(read_text(file, manager.settings.limits.max_bytes), manager.settings.limits)
        resolution = manager.resolve_document(document, team=team, pipeline=pipeline)
    except PipelineSecretsError as exc:  # unreadable, a var source we cannot use, an invalid pipeline name
        report.errors.append(str(exc))
        return report
    keys = list(dict.fromkeys(ref.key for ref in resolution.refs))
    report.vars = len(keys)
    results = resolution.results
    report.undefined = sorted(key_label(key) for key in keys if key in results
                              and results[key].error is None and not results[key].found)
    report.errors = [str(error) for error in resolution.errors]
    for ref in resolution.refs:
        result = results.get(ref.key)
        if result is not None and result.found:
            try:
                vars_.walk_fields(result.value, ref)
            except PipelineSecretsError as exc:
                report.errors.append(str(exc))
    if report.ok:
        try:  # what only a whole interpolation finds: a mapping placed inside a string...
            vars_.interpolate(resolution.body, resolution.secrets, sourced=resolution.sourced)
        except PipelineSecretsError as exc:
            report.errors.append(str(exc))
    return report


def check_files(
    manager: Manager,
    files: Sequence[Path],
    *,
    team: str,
    pipeline: str | None = None,
    pipeline_from_filename: bool = False,
    on_done: Callable[[FileReport], None] | None = None,
) -> list[FileReport]:
    """``check_file`` for each file, in order; with ``pipeline_from_filename`` each file's
    pipeline is its name without the suffix (``deploy.yml`` -> ``deploy``). ``on_done`` is
    called after each file (progress display). Secrets shared by files are read once while
    the manager's cache holds them."""
    reports = []
    for file in files:
        scope = file.stem if pipeline_from_filename else pipeline
        report = check_file(manager, file, team=team, pipeline=scope)
        reports.append(report)
        if on_done is not None:
            on_done(report)
    return reports


def summarize(reports: Sequence[FileReport]) -> dict[str, int]:
    """Totals for the last line of the report and for ``--json``."""
    return {
        "files": len(reports),
        "failed_files": sum(not r.ok for r in reports),
        "vars": sum(r.vars for r in reports),
        "undefined": sum(len(r.undefined) for r in reports),
        "errors": sum(len(r.errors) for r in reports),
    }
