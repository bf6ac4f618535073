"""Every bad input gets a clear error and leaves the registry exactly as it was."""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from support import snapshot_registry

from flows.training import training
from modelops.data import SAMPLE_DATA
from modelops.errors import ConfigurationError, DataLoadError, DataValidationError

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


@pytest.fixture(scope="module")
def baseline(module_mlflow_store: str, prefect_harness: None) -> dict[str, Any]:
    """A registry holding one good, staged version; every bad run must leave it untouched."""
    training()
    snapshot = snapshot_registry()
    assert snapshot["lead-scoring"]["aliases"] == {"staging": "1"}
    return snapshot


def _leads() -> pd.DataFrame:
    return pd.read_csv(SAMPLE_DATA)


def _write_csv(df: pd.DataFrame, folder: Path, name: str = "leads.csv") -> str:
    path = folder / name
    df.to_csv(path, index=False)
    return str(path)


def _missing(tmp: Path) -> str:
    return str(tmp / "nope" / "leads.csv")


def _empty(tmp: Path) -> str:
    (tmp / "leads.csv").write_bytes(b"")
    return str(tmp / "leads.csv")


def _header_only(tmp: Path) -> str:
    (tmp / "leads.csv").write_text("completeness,email_confidence,won\n")
    return str(tmp / "leads.csv")


def _corrupt_parquet(tmp: Path) -> str:
    (tmp / "leads.parquet").write_bytes(b"PAR1" + bytes(range(256)) * 8)
    return str(tmp / "leads.parquet")


def _truncated_gzip(tmp: Path) -> str:
    data = gzip.compress(SAMPLE_DATA.read_bytes())
    (tmp / "leads.csv.gz").write_bytes(data[: len(data) // 2])
    return str(tmp / "leads.csv.gz")


def _unknown_format(tmp: Path) -> str:
    (tmp / "leads.xlsx").write_bytes(b"not really a spreadsheet")
    return str(tmp / "leads.xlsx")


def _no_target(tmp: Path) -> str:
    return _write_csv(_leads().drop(columns="won"), tmp)


def _three_classes(tmp: Path) -> str:
    df = _leads()
    df.loc[df.index[:300], "won"] = 2
    return _write_csv(df, tmp)


def _single_class(tmp: Path) -> str:
    df = _leads()
    df["won"] = 1
    return _write_csv(df, tmp)


def _text_in_numeric(tmp: Path) -> str:
    df = _leads()
    df["email_confidence"] = df["email_confidence"].astype(str)
    df.loc[df.index[::50], "email_confidence"] = "high"
    path = _write_csv(df, tmp)
    (tmp / "leads.schema.json").write_text((SAMPLE_DATA.parent / "leads.schema.json").read_text())
    return path


def _all_null(tmp: Path) -> str:
    df = _leads()
    df["phone_confidence"] = None
    path = _write_csv(df, tmp)
    (tmp / "leads.schema.json").write_text((SAMPLE_DATA.parent / "leads.schema.json").read_text())
    return path


def _out_of_range(tmp: Path) -> str:
    df = _leads()
    df.loc[df.index[:3], "completeness"] = 1.5
    path = _write_csv(df, tmp)
    (tmp / "leads.schema.json").write_text((SAMPLE_DATA.parent / "leads.schema.json").read_text())
    return path


def _too_few_rows(tmp: Path) -> str:
    return _write_csv(_leads().head(20), tmp)


CASES: list[tuple[str, Callable[[Path], str], type[Exception], list[str]]] = [
    ("missing file", _missing, DataLoadError, ["Data file not found", "data_path"]),
    ("empty file", _empty, DataLoadError, ["is empty (0 bytes)"]),
    ("header only", _header_only, DataLoadError, ["has a header", "but no rows"]),
    ("corrupt parquet", _corrupt_parquet, DataLoadError, ["Could not read", "as PARQUET"]),
    ("truncated gzip csv", _truncated_gzip, DataLoadError, ["Could not read", "as CSV"]),
    ("unknown format", _unknown_format, DataLoadError, ["Cannot tell the format", ".parquet"]),
    ("no target column", _no_target, DataValidationError, ["column 'won': is missing"]),
    (
        "three classes",
        _three_classes,
        DataValidationError,
        ["column 'won': target must be binary", "found 3 distinct"],
    ),
    (
        "single class",
        _single_class,
        DataValidationError,
        ["column 'won': target must be binary", "found 1 distinct"],
    ),
    (
        "text in a numeric column",
        _text_in_numeric,
        DataValidationError,
        ["column 'email_confidence': values must be numeric, observed type"],
    ),
    (
        "all-null column",
        _all_null,
        DataValidationError,
        ["column 'phone_confidence': every value is missing"],
    ),
    (
        "out of declared range",
        _out_of_range,
        DataValidationError,
        ["column 'completeness': 3 value(s) outside [0.0, 1.0]"],
    ),
    (
        "too few rows",
        _too_few_rows,
        DataValidationError,
        ["table: has 20 rows, needs at least 100"],
    ),
]


@pytest.mark.parametrize(
    ("make_input", "error", "fragments"),
    [pytest.param(m, e, f, id=i) for i, m, e, f in CASES],
)
def test_bad_input_is_refused_clearly_and_registers_nothing(
    baseline: dict[str, Any],
    tmp_path: Path,
    make_input: Callable[[Path], str],
    error: type[Exception],
    fragments: list[str],
) -> None:
    state = training(data_path=make_input(tmp_path), return_state=True)
    assert state.is_failed()
    with pytest.raises(error) as info:
        state.result()
    for fragment in fragments:
        assert fragment in str(info.value)
    assert snapshot_registry() == baseline


def test_bad_hyper_parameter_names_the_valid_ones(baseline: dict[str, Any]) -> None:
    state = training(
        estimator={"kind": "logistic_regression", "params": {"Cee": 1.0}}, return_state=True
    )
    with pytest.raises(ConfigurationError, match=r"Invalid hyper-parameter.*Valid names:.*C,"):
        state.result()
    assert snapshot_registry() == baseline


def test_validation_failure_is_not_retried(baseline: dict[str, Any], tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client as prefect_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    state = training(data_path=_single_class(tmp_path), return_state=True)
    # Task run states reach the API through Prefect's event pipeline, a moment after the flow
    # returns (under load, seconds): wait for the final one instead of reading too early.
    deadline = time.monotonic() + 60
    while True:
        with prefect_client(sync_client=True) as client:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(
                    id=FlowRunFilterId(any_=[state.state_details.flow_run_id])
                )
            )
        validate = [r for r in runs if r.name.startswith("validate_dataset")]
        settled = validate and validate[0].state is not None and validate[0].state.is_final()
        if settled or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(validate) == 1 and validate[0].run_count == 1
    assert validate[0].state.is_failed()
