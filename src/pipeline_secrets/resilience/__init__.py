"""Behaviour added around a ``SecretReader`` by wrapping it, each wrapper with the same interface.

The manager stacks them as ``SingleFlightReader(CachingReader(RetryingReader(backend)))``: one
cold path costs one AWS call however many callers want it (single-flight sits outside the cache,
so a late caller finds the cache filled); a cache hit costs nothing else; a retried failure is
never cached as an answer.
"""

from .cache import CacheStore, CachingReader, Entry, MemoryStore
from .retry import RetryingReader
from .singleflight import SingleFlightReader

__all__ = ["CacheStore", "CachingReader", "Entry", "MemoryStore", "RetryingReader", "SingleFlightReader"]
