"""Benchmark: the training flow against a bare script doing the same work, in one run.

    python bench/lifecycle.py --rows 100000
    python bench/lifecycle.py --rows 1000000

(a) bare: read the CSV, stratified split, fit the same scikit-learn pipeline, predict, compute
    the same metrics: no Prefect, no MLflow, no validation.
(b) the `training` flow on the same file, against a local Prefect server (started here on a free
    loopback port unless PREFECT_API_URL is set) and a throwaway MLflow SQLite store.

Both are measured warm: each runs once on a small file first, so one-off import costs (shown
separately) are not charged to either. Prints both times, the ratio, and the per-task
breakdown read back from the Prefect API. Not a timed test: run it by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

for _k, _v in {
    "DO_NOT_TRACK": "true",
    "MLFLOW_ENABLE_TELEMETRY": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_LEVEL": "WARNING",
}.items():
    os.environ.setdefault(_k, _v)


def bare(path: str) -> dict[str, float]:
    """The same work as the flow, written as a plain script."""
    import numpy as np
    import pandas as pd
    from sklearn import metrics as m
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import StandardScaler

    df = pd.read_csv(path, engine="pyarrow")
    y = df.pop("won").to_numpy()
    X = df.astype("float64")
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, random_state=42, stratify=y)
    dense = ["completeness", "email_confidence", "source_priority", "intent_signal_score"]
    pre = ColumnTransformer(
        [
            ("numeric", StandardScaler(), dense),
            (
                "nullable",
                make_pipeline(
                    SimpleImputer(strategy="median", add_indicator=True), StandardScaler()
                ),
                ["phone_confidence"],
            ),
        ]
    )
    model = Pipeline([("pre", pre), ("model", LogisticRegression(max_iter=1000, random_state=42))])
    model.fit(X_tr, y_tr)
    proba = model.predict_proba(X_te)[:, 1]
    pred = (proba >= 0.5).astype(int)
    return {
        "roc_auc": m.roc_auc_score(y_te, proba),
        "precision": m.precision_score(y_te, pred),
        "recall": m.recall_score(y_te, pred),
        "f1": m.f1_score(y_te, pred),
        "accuracy": m.accuracy_score(y_te, pred),
        "log_loss": m.log_loss(y_te, np.clip(proba, 1e-15, 1 - 1e-15)),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def prefect_server(home: Path) -> Iterator[str]:
    """A real `prefect server` on loopback for the run (or the one PREFECT_API_URL names)."""
    if os.environ.get("PREFECT_API_URL"):
        yield os.environ["PREFECT_API_URL"]
        return
    import httpx

    port = _free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": ""}
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
         "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/api"
    started = time.perf_counter()
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError("prefect server exited during start-up")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.perf_counter() - started > 180:
                raise RuntimeError("prefect server did not start within 180 s")
            time.sleep(0.5)
        print(f"prefect server up on {url} in {time.perf_counter() - started:.1f}s")
        os.environ["PREFECT_API_URL"] = url
        yield url
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


def task_breakdown(flow_run_id: object) -> list[tuple[str, float]]:
    """Each task run's wall time, in the order they started, from the Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    rows = [
        (r.name.rsplit("-", 1)[0], (r.end_time - r.start_time).total_seconds(), r.start_time)
        for r in runs
        if r.start_time and r.end_time
    ]
    return [(n, d) for n, d, _ in sorted(rows, key=lambda x: x[2])]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each; best is kept")
    args = parser.parse_args()

    from modelops.sample import write_leads

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        os.environ["MODELOPS_HOME"] = str(tmp / "modelops")
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'mlflow.db'}"
        small = write_leads(tmp / "small" / "leads.csv", n_rows=2000)
        data = write_leads(tmp / "big" / "leads.csv", n_rows=args.rows)
        print(f"data: {args.rows:,} rows, {data.stat().st_size / 1e6:.1f} MB CSV")

        t = time.perf_counter()
        bare(str(small))
        bare_cold = time.perf_counter() - t
        bare_times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            metrics = bare(str(data))
            bare_times.append(time.perf_counter() - t)

        with prefect_server(tmp / "prefect"):
            t = time.perf_counter()
            from flows.training import training

            import_time = time.perf_counter() - t
            t = time.perf_counter()
            training(data_path=str(small), model_name="bench-warmup")
            flow_cold = time.perf_counter() - t
            flow_times, states = [], []
            for _ in range(args.repeat):
                t = time.perf_counter()
                state = training(data_path=str(data), model_name="bench", return_state=True)
                flow_times.append(time.perf_counter() - t)
                states.append(state)
            assert all(s.is_completed() for s in states), [s.message for s in states]
            best = min(range(args.repeat), key=lambda i: flow_times[i])
            breakdown = task_breakdown(states[best].state_details.flow_run_id)

    b, f = min(bare_times), min(flow_times)
    print(
        f"\nbare script : {b:6.2f} s  (best of {args.repeat}; first run incl. imports "
        f"{bare_cold:.2f} s)  roc_auc={metrics['roc_auc']:.3f}"
    )
    print(
        f"training flow: {f:6.2f} s  (best of {args.repeat}; import flows.training "
        f"{import_time:.2f} s, first run incl. lazy imports {flow_cold:.2f} s)"
    )
    print(f"ratio flow/bare: {f / b:.2f}x   overhead: {f - b:+.2f} s")
    print("\nper task (best flow run):")
    total = 0.0
    for name, seconds in breakdown:
        total += seconds
        print(f"  {name:<20} {seconds:6.3f} s")
    print(f"  {'(flow engine, API)':<20} {f - total:6.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
