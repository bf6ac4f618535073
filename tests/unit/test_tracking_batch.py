"""A child run's params, metrics and tags reach MLflow in one batch as it ends (fewer store
round trips), complete whether the step succeeded or failed."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelops import tracking
from modelops.settings import Settings


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tracking.TrackingContext:
    monkeypatch.setenv("MODELOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return tracking.start_parent_run(Settings(), "parent")


def _calls(ctx: tracking.TrackingContext, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the store writes the client makes (the client itself still does them)."""
    client = ctx.client()
    calls: list[str] = []

    def recorded(name: str):
        real = getattr(client, name)

        def call(*args, **kwargs):
            calls.append(name)
            return real(*args, **kwargs)

        return call

    for name in ("log_batch", "set_terminated", "create_run"):
        monkeypatch.setattr(client, name, recorded(name))
    return calls


def test_a_child_run_is_written_in_one_batch_when_it_ends(ctx, monkeypatch) -> None:
    calls = _calls(ctx, monkeypatch)
    with tracking.child_run(ctx, "step") as run_id:
        tracking.log_params(ctx, run_id, {"a": 1, "nested": {"b": "x"}})
        tracking.log_metrics(ctx, run_id, {"m": 0.5})
        tracking.log_metrics(ctx, run_id, {"m": 0.7}, step=1)
        tracking.set_tags(ctx, run_id, {"t": "v"})
        tracking.log_params(ctx, run_id, {"a": 1})  # the same value again is fine
        assert ctx.client().get_run(run_id).data.params == {}  # nothing written yet
    assert calls == ["create_run", "log_batch", "set_terminated"]
    run = ctx.client().get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"a": "1", "nested.b": "x"}
    assert run.data.tags["t"] == "v"
    assert [m.value for m in ctx.client().get_metric_history(run_id, "m")] == [0.5, 0.7]
    assert "duration_seconds" in run.data.metrics


def test_a_failed_step_keeps_what_it_logged_and_the_error(ctx) -> None:
    with pytest.raises(RuntimeError), tracking.child_run(ctx, "step") as run_id:
        tracking.log_metrics(ctx, run_id, {"rows": 10})
        raise RuntimeError("boom")
    run = ctx.client().get_run(run_id)
    assert run.info.status == "FAILED"
    assert run.data.metrics["rows"] == 10
    assert run.data.tags["error.message"] == "boom"


def test_changing_a_param_is_refused_at_once_as_mlflow_would(ctx) -> None:
    from mlflow.exceptions import MlflowException

    with tracking.child_run(ctx, "step") as run_id:
        tracking.log_params(ctx, run_id, {"a": 1})
        with pytest.raises(MlflowException, match="Changing param values is not allowed"):
            tracking.log_params(ctx, run_id, {"a": 2})


def test_many_values_are_split_within_mlflows_limits(ctx) -> None:
    with tracking.child_run(ctx, "step") as run_id:
        tracking.log_params(ctx, run_id, {f"p{i}": i for i in range(250)})
        tracking.set_tags(ctx, run_id, {f"t{i}": i for i in range(150)})
        for step in range(3):
            tracking.log_metrics(ctx, run_id, {f"m{i}": i for i in range(500)}, step=step)
    run = ctx.client().get_run(run_id)
    assert len(run.data.params) == 250
    assert sum(k.startswith("t") for k in run.data.tags) == 150
    assert len(ctx.client().get_metric_history(run_id, "m7")) == 3


def test_writes_to_other_runs_go_straight_through(ctx) -> None:
    with tracking.child_run(ctx, "step"):
        tracking.set_tags(ctx, ctx.parent_run_id, {"seen": "now"})
        assert ctx.client().get_run(ctx.parent_run_id).data.tags["seen"] == "now"
