"""Behaviour added around a ``SecretReader`` by wrapping it, each wrapper with the same interface.

The manager stacks them as ``CachingReader(RetryingReader(SecretsManagerBackend))``: a cache hit
costs no retry bookkeeping, and a retried failure is never cached as an answer.
"""

from .cache import CachingReader, MemoryStore
from .retry import RetryingReader

__all__ = ["CachingReader", "MemoryStore", "RetryingReader"]
