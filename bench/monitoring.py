"""Benchmark: the monitoring check on a large window against the same statistics in a script.

    python bench/monitoring.py --rows 1000000 --features 20 [--rounds 2]

A model with N numeric features is trained (training flow, 50k rows), promoted, and checked on
a window of --rows rows (Parquet). Both sides, interleaved over --rounds in one run:
(a) bare: read the window, predict_proba, PSI of every feature over the reference deciles (plus
    a missing bin), scipy's KS test against a 5,000-row reference sample, PSI of the
    predictions — the statistics the flow computes, nothing else;
(b) the `monitoring` flow on the same file (MLflow run, artifacts, chart, verdict).
Prints both, the ratio, and the empty-flow floor. Not a timed test: run it by hand.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import empty_flow_seconds, prefect_server, quiet_environment  # noqa: E402

quiet_environment()


def make_table(rows: int, features: int, seed: int):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, features))
    frame = pd.DataFrame(X, columns=[f"f{i:02d}" for i in range(features)])
    logit = X[:, :5].sum(axis=1) * 0.6
    frame["label"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


def bare(window: Path, model, reference, sample) -> float:
    import numpy as np
    import pandas as pd
    from scipy import stats

    def psi(e, a):
        e = np.clip(e / e.sum(), 1e-4, None)
        a = np.clip(a / a.sum(), 1e-4, None)
        return float(np.sum((a - e) * np.log(a / e)))

    def counts(values, edges):
        finite = np.isfinite(values)
        idx = np.searchsorted(edges, values[finite], side="left")
        return np.append(np.bincount(idx, minlength=len(edges) + 1), (~finite).sum())

    t = time.perf_counter()
    frame = pd.read_parquet(window)
    X = frame[list(reference)]
    proba = model.predict_proba(X)[:, 1]
    worst = 0.0
    for name, (edges, ref_counts) in reference.items():
        values = X[name].to_numpy(dtype="float64")
        worst = max(worst, psi(ref_counts, counts(values, edges)))
        stats.ks_2samp(sample[name].to_numpy(), values[np.isfinite(values)])
    pedges = np.linspace(0.1, 0.9, 9)
    psi(np.ones(10), counts(proba, pedges)[:10] + 1)
    return time.perf_counter() - t


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    import numpy as np

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        os.environ["MODELOPS_HOME"] = str(tmp / "modelops")
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'mlflow.db'}"
        train = tmp / "train.parquet"
        make_table(50_000, args.features, 1).to_parquet(train, index=False)
        window = tmp / "window.parquet"
        make_table(args.rows, args.features, 2).drop(columns="label").to_parquet(window)
        print(f"window: {args.rows:,} rows x {args.features} features")
        with prefect_server(tmp / "prefect"):
            from mlflow import MlflowClient

            from flows.monitoring import monitoring
            from flows.training import training
            from modelops import ModelStage, promote_model
            from modelops.steps.monitoring import resolve_watched

            result = training(
                data_path=str(train),
                target="label",
                model_name="bench-monitor",
                thresholds={"roc_auc": 0.6},
            )
            promote_model("bench-monitor", result.version, stage=ModelStage.PRODUCTION)
            watched = resolve_watched(MlflowClient(), "bench-monitor", "production")
            reference = {
                n: (np.asarray(f["edges"]), np.asarray(f["counts"], dtype=float))
                for n, f in watched.profile["features"].items()
            }
            monitoring(model_name="bench-monitor", data_path=str(train), min_rows=1)  # warm
            bare(train, watched.model, reference, watched.sample)
            times: dict[str, list[float]] = {"bare": [], "flow": []}
            for _ in range(args.rounds):
                times["bare"].append(bare(window, watched.model, reference, watched.sample))
                t = time.perf_counter()
                monitoring(model_name="bench-monitor", data_path=str(window))
                times["flow"].append(time.perf_counter() - t)
            floor = empty_flow_seconds()
    b, f = min(times["bare"]), min(times["flow"])
    print(f"bare statistics : {b:6.2f} s (best of {args.rounds})")
    print(f"monitoring flow : {f:6.2f} s (best of {args.rounds})")
    print(
        f"ratio {f / b:.2f}x; overhead {f - b:+.2f} s; empty flow floor {floor:.2f} s; "
        f"target: flow <= 1.5 x bare + floor = {1.5 * b + floor:.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
