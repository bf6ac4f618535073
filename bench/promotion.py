"""Benchmark: a champion/challenger promotion against its bare cost, in one run.

    python bench/promotion.py --rows 100000

bare: read the held-out CSV, predict_proba with champion and challenger (already loaded),
      roc_auc for each, and the two alias writes (production, previous-production).
flow: the `promotion` flow (lock, MLflow run, resolve + staging check, load both models from
      the registry, score both, compare, transactional alias moves + audit tags), against a
      real local Prefect server and a throwaway MLflow SQLite store. Warm, best of N.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from bench._common import empty_flow_seconds, prefect_server, quiet_environment, task_breakdown  # noqa: E402

quiet_environment()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="held-out rows")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        os.environ["MODELOPS_HOME"] = str(tmp / "modelops")
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'mlflow.db'}"

        import pandas as pd
        from sklearn.metrics import roc_auc_score
        from support import register_fixture_version

        from modelops.model_io import load_sklearn
        from modelops.sample import write_leads
        from modelops.settings import get_settings
        from modelops.tracking import get_client

        held_out = write_leads(tmp / "held_out.csv", n_rows=args.rows, seed=99)
        for name in ("warmup", "bench"):
            register_fixture_version(name, stage=False)
            register_fixture_version(name)
        client = get_client(get_settings().resolved_tracking_uri)
        models = [load_sklearn(client, "bench", v)[0] for v in ("1", "2")]

        def reset(name: str) -> None:
            client.set_registered_model_alias(name, "production", "1")
            client.set_registered_model_alias(name, "staging", "2")
            with contextlib.suppress(Exception):
                client.delete_registered_model_alias(name, "previous-production")
            if "modelops.archived" in client.get_model_version(name, "1").tags:
                client.delete_model_version_tag(name, "1", "modelops.archived")

        bare_times = []
        for _ in range(args.repeat):
            reset("bench")
            t = time.perf_counter()
            df = pd.read_csv(held_out, engine="pyarrow")
            y = df.pop("won").to_numpy()
            X = df.astype("float64")
            scores = [roc_auc_score(y, m.predict_proba(X)[:, 1]) for m in models]
            client.set_registered_model_alias("bench", "production", "2")
            client.set_registered_model_alias("bench", "previous-production", "1")
            bare_times.append(time.perf_counter() - t)

        with prefect_server(tmp / "prefect"):
            from flows.promotion import promotion

            reset("warmup")
            promotion(model_name="warmup", held_out_path=str(held_out), margin=1.0)
            flow_times, states = [], []
            for _ in range(args.repeat):
                reset("bench")
                t = time.perf_counter()
                state = promotion(
                    model_name="bench", held_out_path=str(held_out), margin=1.0, return_state=True
                )
                flow_times.append(time.perf_counter() - t)
                states.append(state)
            assert all(s.is_completed() for s in states), [s.message for s in states]
            best = min(range(args.repeat), key=lambda i: flow_times[i])
            empty = empty_flow_seconds()
            breakdown = task_breakdown(states[best].state_details.flow_run_id)

    b, f = min(bare_times), min(flow_times)
    print(
        f"held-out rows: {args.rows:,}  champion/challenger roc_auc: "
        f"{scores[0]:.3f} / {scores[1]:.3f}"
    )
    print(f"bare (read + 2x predict_proba + 2 alias writes): {b:6.2f} s (best of {args.repeat})")
    print(f"promotion flow                                 : {f:6.2f} s (best of {args.repeat})")
    print(f"ratio {f / b:.2f}x, overhead {f - b:+.2f} s")
    print(f"(an empty Prefect flow run costs {empty:.2f} s against this server: the floor)")
    print("per task (best run):")
    for name, seconds in breakdown:
        print(f"  {name:<24} {seconds:6.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
