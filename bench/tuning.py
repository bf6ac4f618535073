"""Benchmark: the tuning flow's search, one candidate after another vs on a local Dask cluster.

    python bench/tuning.py --rows 100000 [--rounds 2] [--workers N]

The same `tuning` flow, the same 8 candidates on the same file, three ways, interleaved over
--rounds against one local Prefect server and a throwaway MLflow SQLite store:
  sequential   every candidate in the flow process, one after another (the baseline);
  dask-local   runner=dask: a local cluster started for the run (its start-up is charged);
  dask-address runner=dask, dask_address= an existing local cluster started once here, as a
               team's standing cluster would be. Prints each side's best flow time,
the summed candidate fit time, and the speed-up. Not a timed test: run it by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import prefect_server, quiet_environment  # noqa: E402
from modelops.orchestration.search import WORKER_PRELOAD  # noqa: E402

quiet_environment()

# 8 candidates of similar cost, single-threaded in both modes (a random forest's n_jobs would
# give the sequential side both cores: see the README for a mixed search's figures).
SEARCH = {
    "gradient_boosting": {
        "n_estimators": [60, 100],
        "max_depth": [2, 3],
        "learning_rate": [0.05, 0.1],
    },
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved runs of each side")
    parser.add_argument("--workers", type=int, default=None, help="Dask workers (default: cores)")
    args = parser.parse_args()

    from modelops.sample import write_leads

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        os.environ["MODELOPS_HOME"] = str(tmp / "modelops")
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'mlflow.db'}"
        data = write_leads(tmp / "big" / "leads.csv", n_rows=args.rows)
        small = write_leads(tmp / "small" / "leads.csv", n_rows=2000)
        print(f"data: {args.rows:,} rows; 8 candidates; {os.cpu_count()} cores")
        with prefect_server(tmp / "prefect"):
            from mlflow import MlflowClient

            from flows.tuning import tuning

            tuning(
                data_path=str(small),
                model_name="warmup",
                runner="sequential",
                search={"logistic_regression": {}},
            )
            from distributed import LocalCluster

            standing = LocalCluster(
                n_workers=args.workers or os.cpu_count(),
                threads_per_worker=1,
                dashboard_address=":0",
                preload=WORKER_PRELOAD,
            )
            sides = {
                "sequential": {"runner": "sequential"},
                "dask-local": {"runner": "dask", "dask_workers": args.workers},
                "dask-address": {"runner": "dask", "dask_address": standing.scheduler_address},
            }
            times: dict[str, list[float]] = {side: [] for side in sides}
            fits: dict[str, float] = {}
            for _ in range(args.rounds):
                for runner, options in sides.items():
                    t = time.perf_counter()
                    result = tuning(
                        data_path=str(data),
                        model_name="bench",
                        search=SEARCH,
                        thresholds={"roc_auc": 0.6},
                        force_retrain=True,  # every round searches (unchanged runs reuse)
                        **options,
                    )
                    times[runner].append(time.perf_counter() - t)
                    path = MlflowClient().download_artifacts(
                        result.mlflow_run_id, "search/results.json"
                    )
                    results = json.loads(Path(path).read_text())
                    assert all(r["status"] == "finished" for r in results), results
                    fits[runner] = sum(r["fit_seconds"] for r in results)
                    print(
                        f"  {runner:<10} {times[runner][-1]:6.2f} s  (candidates' fit time "
                        f"summed {fits[runner]:.1f} s)"
                    )
            standing.close()
    seq = min(times["sequential"])
    print()
    for side, values in times.items():
        print(
            f"{side:<13}: {min(values):6.2f} s (best of {args.rounds})  "
            f"speed-up {seq / min(values):.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
