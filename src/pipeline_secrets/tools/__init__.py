"""Operator tools, over the manager: what an operator runs to set up and check an installation.

- ``policy``: the IAM policy the templates need;
- ``access``: what the credentials may read, path by path (``check-access``);
- ``writing``: storing a secret where its lookup reads it (``put``);
- ``bulk``, ``bulk_output``: checking many pipeline files at once (``check``).
"""
