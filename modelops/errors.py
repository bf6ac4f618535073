"""One error hierarchy for the whole project, and the one place that decides what is transient.

Every error says what was wrong and what to do about it. Retry decisions are made only by
:func:`is_transient`: validation failures, failed gates, refused promotions and permission
errors are final; connection faults, HTTP 5xx/429 and "database is locked" are transient.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from modelops.uris import redact


class ModelOpsError(Exception):
    """Base class for every error this project raises on purpose.

    ``exit_code`` is what the command line exits with when this error ends a command (see the
    README's table); the first line of the message is the one-line summary it prints.
    """

    exit_code = 1

    @property
    def summary(self) -> str:
        """The first line of the message: what went wrong, in one line."""
        text = str(self).strip()
        return text.splitlines()[0] if text else type(self).__name__


class ConfigurationError(ModelOpsError):
    """A parameter or setting is invalid; fix the input, retrying will not help."""

    exit_code = 2


class DataLoadError(ModelOpsError):
    """The data file is missing, empty, corrupt or in an unsupported format."""

    exit_code = 3


class DataValidationError(ModelOpsError):
    """The data set failed its expectation suite.

    Attributes:
        failures: one human-readable line per failed expectation.
        report: the full validation report (a JSON-serialisable dict).
    """

    exit_code = 3

    def __init__(
        self, message: str, failures: list[str] | None = None, report: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.failures = failures or []
        self.report = report or {}


class QualityGateFailed(ModelOpsError):
    """The candidate model missed one or more metric thresholds.

    Attributes:
        decision: the gate decision (metric rows and verdict) as a dict.
    """

    exit_code = 4

    def __init__(self, message: str, decision: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.decision = decision or {}


class RegistryError(ModelOpsError):
    """A model registry operation was refused or referred to something that does not exist."""

    exit_code = 5


class ModelNotFound(RegistryError):
    """The registered model, version or alias does not exist (a wrong argument: exit 2)."""

    exit_code = 2


class PromotionRefused(RegistryError):
    """A promotion was refused by policy (not staged, challenger worse than champion, ...)."""


class DeploymentFailed(ModelOpsError):
    """A rollout or smoke test failed; the previous deployment was restored where possible."""

    exit_code = 6


class PermissionDenied(ModelOpsError):
    """The credentials in use may not perform the operation (HTTP 401/403); never retried."""

    exit_code = 7


class TransientError(ModelOpsError):
    """A fault that may go away by itself (connection refused, 5xx, 429, database locked)."""

    exit_code = 75  # EX_TEMPFAIL: try again later


# What a fault that may go away by itself says, in the words of the clients this project uses
# (requests/urllib3, httpx, sqlite3/SQLAlchemy, psycopg, kubernetes). The one list: is_transient
# retries on it and unreachable names the fault with it, so what is retried is also what is
# named when the retries run out. Causes come before "max retries exceeded", which urllib3
# wraps around them and which is the one to name only when no cause is given.
TRANSIENT_PHRASES = (
    "connection refused",
    "connection reset",
    "connection aborted",
    "remote end closed connection",
    "server closed the connection",
    "broken pipe",
    "timed out",
    "too many requests",
    "service unavailable",
    "temporarily unavailable",
    "database is locked",
    "max retries exceeded",
)


def transient_phrase(text: str) -> str | None:
    """The first of :data:`TRANSIENT_PHRASES` that ``text`` holds (any case), if any."""
    lowered = text.lower()
    return next((phrase for phrase in TRANSIENT_PHRASES if phrase in lowered), None)


_FINAL_HTTP = {400, 401, 403, 404, 405, 409, 410, 422}


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _http_status(exc: BaseException) -> int | None:
    """The HTTP status an exception carries, whichever client raised it."""
    for attr in ("status", "status_code", "code"):
        value = getattr(exc, attr, None)
        if isinstance(value, int) and 100 <= value <= 599:
            return value
    response = getattr(exc, "response", None)
    value = getattr(response, "status_code", None)
    if isinstance(value, int):
        return value
    get_status = getattr(exc, "get_http_status_code", None)  # MlflowException
    if callable(get_status):
        try:
            value = get_status()
        except Exception:
            return None
        if isinstance(value, int) and value != 500:
            # MlflowException reports 500 for every error code it does not map, including
            # plain client-side errors, so only an explicit non-500 status is trusted here.
            return value
    return None


def unreachable(exc: BaseException) -> TransientError:
    """A transient fault that outlasted every retry, said in one line: what did not answer,
    why, and what to check. An MLflow server is named by its URL (credentials removed)."""
    text = " ".join(str(e) for e in _chain(exc))
    server = re.search(r"API request to (https?://[^\s/]+)", text)
    what = f"The MLflow tracking server at {redact(server[1])}" if server else "A service"
    reason = transient_phrase(text) or type(exc).__name__
    check = "MLFLOW_TRACKING_URI" if server else "the logs above"
    return TransientError(
        f"{what} did not answer ({reason}) through every retry. Check that it is running and "
        f"reachable ({check}), then run again."
    )


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the operation that raised ``exc`` may succeed.

    Walks the cause chain: the first error that is clearly final (one of ours other than
    :class:`TransientError`, or an HTTP 4xx other than 408/429) wins over anything below it.

    Args:
        exc: the exception a task raised.

    Returns:
        True for connection faults, timeouts, HTTP 5xx/429/408 and "database is locked".
    """
    for err in _chain(exc):
        if isinstance(err, TransientError):
            return True
        if isinstance(err, ModelOpsError):
            return False
        status = _http_status(err)
        if status is not None:
            if status in (408, 429) or status >= 500:
                return True
            if status in _FINAL_HTTP or 400 <= status < 500:
                return False
        if isinstance(err, ConnectionError | TimeoutError):
            return True
        if transient_phrase(str(err)):
            return True
    return False
