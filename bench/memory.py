"""Memory per cached secret (issue 12): 100,000 secrets of 1 KiB read through the real reader stack
(``CachingReader`` over a ``MemoryStore`` partition, values made by the reader below as the AWS
backend makes them), measured with tracemalloc: every byte the cache holds, the values included,
divided by the bytes of the values and their paths. Then churn: three times as many new paths, and
the store must still hold at most ``max_entries``.

    python bench/memory.py [--write]     # --write: into docs/performance.md
"""

from __future__ import annotations

import gc
import sys
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline_secrets.metrics import Metrics
from pipeline_secrets.resilience.cache import CachingReader, MemoryStore

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "bench")]
import report  # noqa: E402

ENTRIES = 100_000
VALUE_BYTES = 1024


class OneKibValues:
    """Stands for the backend: a fresh 1 KiB string per path, as a decoded SecretString is."""

    def get(self, path: str) -> Any:
        return (path + ":" + "v" * VALUE_BYTES)[-VALUE_BYTES:]

    def get_many(self, paths: Sequence[str]) -> dict[str, Any]:
        return {path: self.get(path) for path in paths}


def path_of(i: int, kind: str = "var") -> str:
    return f"/concourse/team{i % 20:02d}/pipeline{i % 10}/{kind}-{i:07d}"


def main() -> int:
    store = MemoryStore(purge_interval=3600, max_entries=ENTRIES)
    readers = {f"team{t:02d}": CachingReader(OneKibValues(), store.partition(f"team{t:02d}"), found_ttl=3600,
                                             notfound_ttl=60, metrics=Metrics()) for t in range(20)}
    paths = [path_of(i) for i in range(ENTRIES)]
    payload = sum(len(path) + VALUE_BYTES for path in paths)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for start in range(0, ENTRIES, 500):
        chunk = paths[start:start + 500]
        for path in chunk:
            readers[path.split("/")[2]].get_many([path])
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    # The paths list above is the caller's; the store keeps its own references to the same
    # strings, so their bytes are counted once, as payload.
    path_bytes = sum(sys.getsizeof(path) for path in paths)
    per_entry = (held + path_bytes) / ENTRIES
    ratio = (held + path_bytes) / payload
    print(f"{ENTRIES:,} entries of {VALUE_BYTES} B values: {per_entry:,.0f} bytes per cached secret, "
          f"{ratio:.2f}x the value and path bytes ({payload / ENTRIES:,.0f} B) (target <= 2.00x)")
    for i in range(3 * ENTRIES):
        path = path_of(i, "churn")
        readers[path.split("/")[2]].get_many([path])
    churned = f"after {3 * ENTRIES:,} more paths: {len(store):,} entries held (max_entries {ENTRIES:,})"
    print(churned)
    met = ratio <= 2.0 and len(store) <= ENTRIES
    if "--write" in sys.argv:
        report.write_section(ROOT / "docs" / "performance.md", "memory", (
            "## Memory per cached secret\n\n`python bench/memory.py --write`: "
            f"{ENTRIES:,} secrets of {VALUE_BYTES} bytes read through `CachingReader` into a `MemoryStore` "
            "partition per team, every byte the cache holds measured with tracemalloc (values included):\n\n"
            f"- **{per_entry:,.0f} bytes per cached secret**, {ratio:.2f}x the bytes of the value and its path "
            f"({payload / ENTRIES:,.0f} B); target <= 2.00x: {'met' if met else 'not met'}.\n- {churned}.\n"))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
