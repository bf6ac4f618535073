"""The one place that decides what is retried."""

from __future__ import annotations

import sqlite3

import pytest
import requests
from kubernetes.client.exceptions import ApiException
from mlflow.exceptions import MlflowException
from mlflow.protos import databricks_pb2 as codes

from modelops.errors import (
    DataLoadError,
    DataValidationError,
    PermissionDenied,
    QualityGateFailed,
    TransientError,
    is_transient,
)


def _http_error(status: int) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    return requests.HTTPError(f"{status} error", response=response)


def _chained(outer: Exception, inner: Exception) -> Exception:
    try:
        try:
            raise inner
        except Exception as exc:
            raise outer from exc
    except Exception as exc:
        return exc


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "Connection refused"),
        ConnectionResetError(104, "Connection reset by peer"),
        TimeoutError("timed out"),
        sqlite3.OperationalError("database is locked"),
        requests.ConnectionError("Max retries exceeded with url: /api (Connection refused)"),
        _http_error(503),
        _http_error(429),
        _http_error(502),
        ApiException(status=500, reason="Internal Server Error"),
        ApiException(status=503, reason="Service Unavailable"),
        MlflowException("slow down", error_code=codes.REQUEST_LIMIT_EXCEEDED),
        MlflowException("try later", error_code=codes.TEMPORARILY_UNAVAILABLE),
        TransientError("anything we say is transient"),
        _chained(RuntimeError("registration failed"), ConnectionRefusedError("refused")),
    ],
    ids=repr,
)
def test_transient_faults_are_retried(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        DataValidationError("column 'won' is missing"),
        QualityGateFailed("roc_auc 0.6 < 0.7"),
        DataLoadError("file not found"),
        PermissionDenied("forbidden"),
        ApiException(status=403, reason="Forbidden"),
        ApiException(status=404, reason="Not Found"),
        ApiException(status=409, reason="Conflict"),
        _http_error(400),
        _http_error(403),
        MlflowException("no such model", error_code=codes.RESOURCE_DOES_NOT_EXIST),
        MlflowException("bad value", error_code=codes.INVALID_PARAMETER_VALUE),
        ValueError("bad input"),
        KeyError("won"),
        # Our own final verdict wins over a transient-looking cause below it.
        _chained(DataValidationError("bad data"), ConnectionResetError("reset")),
        # A 403 is final even if the message mentions a timeout.
        ApiException(status=403, reason="Forbidden: token timed out"),
    ],
    ids=repr,
)
def test_final_errors_are_not_retried(exc: BaseException) -> None:
    assert not is_transient(exc)


# Every phrase either old list knew (is_transient had some, unreachable's reasons others).
PHRASES = [
    "connection refused",
    "connection reset",
    "connection aborted",
    "timed out",
    "too many requests",
    "service unavailable",
    "temporarily unavailable",
    "database is locked",
    "remote end closed connection",
    "max retries exceeded",
    "broken pipe",
    "server closed the connection",
]


@pytest.mark.parametrize("phrase", PHRASES)
def test_a_fault_that_is_retried_is_named_by_the_same_phrase_when_retries_run_out(
    phrase: str,
) -> None:
    from modelops.errors import unreachable

    exc = RuntimeError(f"API request to http://mlflow:5000/api failed: {phrase.capitalize()}")
    assert is_transient(exc)
    assert f"({phrase})" in str(unreachable(exc))
