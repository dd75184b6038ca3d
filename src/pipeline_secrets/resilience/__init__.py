"""Behaviour added around a ``SecretReader`` by wrapping it, each wrapper with the same interface.

The manager stacks them as ``CachingReader(SingleFlightReader(RetryingReader(backend)))``: a
cache hit costs nothing else; one cold path costs one AWS call however many callers want it; a
retried failure is never cached as an answer.
"""

from .cache import CacheStore, CachingReader, Entry, MemoryStore
from .retry import RetryingReader
from .singleflight import SingleFlightReader

__all__ = ["CacheStore", "CachingReader", "Entry", "MemoryStore", "RetryingReader", "SingleFlightReader"]
