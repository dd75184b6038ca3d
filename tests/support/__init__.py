"""Test infrastructure shared by the test suite, benchmarks and later components.

Modules:

- ``motoserver``: moto's server mode in a child process (keeps moto's botocore
  hooks out of the test process).
- ``iam``: a small IAM identity-policy evaluator (Allow/Deny, NotAction,
  NotResource, ``*``/``?`` wildcards) and deterministic secret ARNs.
- ``faultproxy``: a wire-level reverse proxy between botocore and moto that
  injects AWS-shaped faults (AccessDenied from a policy, throttling, 5xx,
  dropped/hung connections, latency) and logs every call.
- ``imds``: a local IMDSv2 endpoint so botocore's default credential chain
  finds an "instance role".

Import as ``from support.faultproxy import FaultProxy``: ``tests/`` is put on
``sys.path`` by ``tests/conftest.py`` (``tests`` itself is not a package).
"""
