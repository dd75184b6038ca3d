"""AWS's answers as ours: an error code (and HTTP status) becomes not found (``None``) or a typed,
retryable or final ``LookupFailed``. The one classifier for every AWS call we make (Secrets
Manager's reads and writes, STS's AssumeRole)."""

from __future__ import annotations

from botocore.exceptions import (
    ClientError,
    ConnectionError as BotoConnectionError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)

from ..errors import LookupFailed

# Not found: the secret does not exist, or it is scheduled for deletion (InvalidRequestException).
_NOT_FOUND_CODES = frozenset({"ResourceNotFoundException", "InvalidRequestException"})
# The union of throttling codes that botocore's standard retry mode recognises.
_THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException", "RequestLimitExceeded",
    "BandwidthLimitExceeded", "RequestThrottled", "SlowDown", "PriorRequestNotComplete",
})
_TRANSIENT_CODES = frozenset({"RequestTimeout", "RequestTimeoutException", "InternalServiceError",
                              "InternalFailure", "ServiceUnavailable"})
_KIND_BY_CODE = {
    "AccessDeniedException": "access-denied",
    "UnrecognizedClientException": "credentials",
    "InvalidSignatureException": "credentials",
    "ExpiredTokenException": "credentials",
    "DecryptionFailure": "decryption",
    # STS (AssumeRole) says these where Secrets Manager says the ones above.
    "AccessDenied": "access-denied",
    "ExpiredToken": "credentials",
    "InvalidClientTokenId": "credentials",
    "SignatureDoesNotMatch": "credentials",
}


def classify_error(path: str, exc: Exception) -> LookupFailed | None:
    """``None`` for not found; otherwise the typed failure, retryable or not."""
    if isinstance(exc, ClientError):
        detail = exc.response.get("Error", {}).get("Message") or "no message"
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return classify_code(path, error_code(exc), detail, status)
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError)):
        return LookupFailed(
            path, "credentials",
            f"{exc}: give --aws-secretsmanager-access-key and --aws-secretsmanager-secret-key, "
            "or configure the AWS SDK's default chain (environment, profile, instance role)",
        )
    if isinstance(exc, (BotoConnectionError, HTTPClientError)):
        return LookupFailed(path, "network", str(exc), retryable=True)
    return LookupFailed(path, "error", f"{type(exc).__name__}: {exc}")


def classify_code(path: str, code: str, detail: str, status: int = 0) -> LookupFailed | None:
    """An AWS error code (and HTTP status) as ``None`` for not found, or a typed failure."""
    if code in _NOT_FOUND_CODES:
        return None
    if code.isdigit():
        # botocore names the error by its HTTP status when it cannot read the body: an answer cut
        # or garbled on the way (no AWS service answers so), as retryable as a dropped connection.
        return LookupFailed(path, "network", f"unreadable error answer (HTTP {code})", code=code, retryable=True)
    if code in _THROTTLING_CODES or status == 429:
        return LookupFailed(path, "throttled", detail, code=code, retryable=True)
    if code in _TRANSIENT_CODES or status >= 500:
        return LookupFailed(path, "unavailable", detail, code=code, retryable=True)
    return LookupFailed(path, _KIND_BY_CODE.get(code, "error"), detail, code=code)


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
