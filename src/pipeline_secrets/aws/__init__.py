"""The AWS layer: the only place that talks to AWS, and the one that turns its answers into found,
not found or a typed ``LookupFailed``. Everything above sees the ``SecretReader`` interface.

- ``backend``: the Secrets Manager client (credentials from the settings or the SDK's chain),
  batched reads, the health check, writes.
"""

from .backend import HEALTH_CHECK_SECRET, SecretReader, SecretsManagerBackend, first_answer, identity_of, make_client

__all__ = ["HEALTH_CHECK_SECRET", "SecretReader", "SecretsManagerBackend", "first_answer", "identity_of", "make_client"]
