"""The shared retry policy: transient faults are retried, final errors are not."""

from __future__ import annotations

import sqlite3

import pytest
from prefect import flow, task

from modelops.errors import DataValidationError, PermissionDenied, QualityGateFailed
from tasks.common import IO_TASK

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _flaky(failures: list[BaseException]) -> tuple[object, list[int]]:
    calls: list[int] = []

    @task(**{**IO_TASK, "retry_delay_seconds": 0, "retry_jitter_factor": None})
    def step() -> str:
        calls.append(1)
        if failures:
            raise failures.pop(0)
        return "done"

    return step, calls


@pytest.mark.parametrize(
    "fault",
    [
        sqlite3.OperationalError("database is locked"),
        ConnectionRefusedError(111, "Connection refused"),
    ],
    ids=repr,
)
def test_transient_faults_are_retried_until_success(fault: BaseException) -> None:
    step, calls = _flaky([fault, fault])

    @flow
    def wrapper() -> str:
        return step()

    assert wrapper() == "done"
    assert len(calls) == 3


def test_retries_stop_after_the_budget() -> None:
    step, calls = _flaky([ConnectionResetError("reset")] * 10)

    @flow
    def wrapper() -> str:
        return step()

    with pytest.raises(ConnectionResetError):
        wrapper()
    assert len(calls) == 1 + IO_TASK["retries"]


@pytest.mark.parametrize(
    "fault",
    [DataValidationError("bad data"), QualityGateFailed("gate"), PermissionDenied("403")],
    ids=repr,
)
def test_final_errors_fail_at_once(fault: BaseException) -> None:
    step, calls = _flaky([fault])

    @flow
    def wrapper() -> str:
        return step()

    with pytest.raises(type(fault)):
        wrapper()
    assert len(calls) == 1
