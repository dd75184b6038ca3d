"""Resolving the vars of a whole document: the cluster-wide manager's, and its var sources'.

Order of work, so that a refused var costs no AWS call: declarations are checked, then every var
is checked (syntax, source declared, name and scope) against the cluster's rules or its source's,
then the sources whose config holds ``((vars))`` have them resolved through the cluster, and only
then are secrets read, each source's names in batched rounds of their own.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import LimitError, PipelineSecretsError, VarNameError, VarSourceConfigError, VarSourceError
from ..pure import vars as vars_
from ..pure.limits import MAX_VARS_FLAG, DocumentLimits
from ..pure.var_sources import KEY, VarSourceSpec, split_var_sources
from .lookups import Lookups, Resolved, Trace
from .sources import Source, SourceFactory


@dataclass
class DocumentVars:
    """What a document's vars resolved to, keyed by (source, path); ``source`` is None for the
    cluster-wide manager."""

    document: Any
    body: Any  # the document without its var_sources block
    refs: list[vars_.VarRef]
    results: dict[tuple[str | None, str], Resolved] = field(default_factory=dict)

    @property
    def errors(self) -> list[PipelineSecretsError]:
        """Every failure, in var order: refused names first, then the others (AWS failures)."""
        failed = [r.error for _, r in sorted(self.results.items(), key=lambda kv: key_label(kv[0])) if r.error]
        refused = [error for error in failed if isinstance(error, (VarNameError, VarSourceError))]
        return refused + [error for error in failed if not isinstance(error, (VarNameError, VarSourceError))]

    def raise_first(self) -> None:
        errors = self.errors
        if errors:
            raise errors[0]

    @property
    def secrets(self) -> dict[str, Any]:
        return {path: r.value for (source, path), r in self.results.items() if source is None and r.found}

    @property
    def sourced(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for (source, path), r in self.results.items():
            if source is not None:
                table = out.setdefault(source, {})
                if r.found:
                    table[path] = r.value
        return out

    def reassemble(self, interpolated: Any, *, drop_var_sources: bool) -> Any:
        """The interpolated body with the var_sources block back where it was, as it was
        (Concourse needs it at run time), unless ``drop_var_sources``."""
        if not isinstance(self.document, Mapping) or KEY not in self.document or drop_var_sources:
            return interpolated
        out = {}
        for key in self.document:
            out[key] = copy.deepcopy(self.document[KEY]) if key == KEY else interpolated[key]
        return out


def resolve_document(
    cluster: Lookups, factory: SourceFactory, document: Any, *, team: str, pipeline: str | None,
    limits: DocumentLimits, refuse_early: bool, trace: Trace | None = None, memory_only: bool = False,
) -> DocumentVars:
    """Resolve every var of ``document``. With ``refuse_early`` the first refusal (an undeclared
    source, a refused name, a declaration we cannot use) is raised before any AWS call; without,
    each var's failure is its own result (``check``), and only declarations fail the call.
    ``memory_only``: ``NotInMemory`` as soon as an answer would need AWS or Redis."""
    specs, body = split_var_sources(document)
    refs = [ref for ref in vars_.collect_vars(body) if not ref.local]
    if len(refs) > limits.max_vars:
        raise LimitError(f"document has more than {limits.max_vars:,} distinct vars ({MAX_VARS_FLAG})")
    resolution = DocumentVars(document, body, refs)
    declared = {spec.name: spec for spec in specs}
    wanted: dict[str | None, list[str]] = {}
    for ref in refs:
        if ref.source is not None and ref.source not in declared:
            error = VarSourceError(f"missing source '{ref.source}' in var: {ref}")
            if refuse_early:
                raise error
            resolution.results[ref.key] = Resolved(ref.path, error=error)
            continue
        wanted.setdefault(ref.source, []).append(ref.path)
    sources: dict[str, Source] = {}
    pending: list[VarSourceSpec] = []  # sources whose config needs the cluster's vars first
    for name in wanted:
        if name is not None:
            spec = declared[name]
            if vars_.collect_vars(spec.config):
                pending.append(spec)
            else:
                sources[name] = factory.build(spec, spec.config, memory_only=memory_only)
    _check_names(cluster, sources, wanted, team, pipeline, resolution, refuse_early)
    for spec in pending:
        config = _resolve_config(cluster, spec, team, pipeline, limits, memory_only)
        sources[spec.name] = factory.build(spec, config, memory_only=memory_only)
    _check_names(cluster, {spec.name: sources[spec.name] for spec in pending}, wanted, team, pipeline,
                 resolution, refuse_early, cluster_too=False)
    for name, names in wanted.items():
        left = [n for n in dict.fromkeys(names) if (name, n) not in resolution.results]
        if not left:
            continue
        resolver = cluster if name is None else sources[name]
        for path, result in resolver.resolve(left, team, pipeline, trace, memory_only=memory_only).items():
            resolution.results[(name, path)] = result
    return resolution


def _check_names(
    cluster: Lookups, sources: Mapping[str, Source], wanted: Mapping[str | None, list[str]], team: str,
    pipeline: str | None, resolution: DocumentVars, refuse_early: bool, *, cluster_too: bool = True,
) -> None:
    """Refusals (names, scope) of the cluster's vars and those of ``sources``, before any read."""
    checks: list[tuple[str | None, Any]] = [(None, cluster)] if cluster_too and None in wanted else []
    checks += [(name, source) for name, source in sources.items()]
    for name, resolver in checks:
        for path, result in sorted(resolver.refusals(wanted[name], team, pipeline).items()):
            if refuse_early:
                raise result.error  # type: ignore[misc]
            resolution.results[(name, path)] = result


def _resolve_config(cluster: Lookups, spec: VarSourceSpec, team: str, pipeline: str | None,
                    limits: DocumentLimits, memory_only: bool = False) -> Mapping[str, Any]:
    """The source's config with its ``((vars))`` read from the cluster-wide manager."""
    refs = vars_.collect_vars(spec.config)
    if any(ref.source is not None for ref in refs):
        raise VarSourceConfigError(
            f"var source '{spec.name}': its config may only use ((vars)) of the cluster-wide credential manager"
        )
    resolved = cluster.resolve([ref.path for ref in refs], team, pipeline, refuse_early=True, memory_only=memory_only)
    for name in sorted(resolved):
        if resolved[name].error is not None:
            raise resolved[name].error  # type: ignore[misc]
    secrets = {name: r.value for name, r in resolved.items() if r.found}
    return vars_.interpolate(spec.config, secrets, limits=limits)  # type: ignore[return-value]


def key_label(key: tuple[str | None, str]) -> str:
    """A (source, path) key as a var names it: ``source:path``, or the path alone."""
    source, path = key
    return f"{source}:{path}" if source else path
