"""Benchmark: the library's train_model on a DataFrame against the bare work, in one run.

    python bench/library.py --rows 100000 [--repeat 3]

(a) bare: the same split, pipeline, fit, predict and metrics as a plain script (bench/lifecycle.py's
    bare function, on the in-memory frame: no file read);
(b) modelops.train_model(df, ...) with MLflow on (validation, gate, model logging,
    registration, staging) into a throwaway SQLite store; no Prefect anywhere.
Both warm (one small run first), best of --repeat, interleaved.
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

from bench._common import quiet_environment  # noqa: E402

quiet_environment()


def bare(df):
    import numpy as np
    from sklearn import metrics as m
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = df["won"].to_numpy()
    X = df.drop(columns="won").astype("float64")
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
        "log_loss": m.log_loss(y_te, np.clip(proba, 1e-15, 1 - 1e-15)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from modelops.sample import make_leads

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MODELOPS_HOME"] = tmp
        from modelops import MLflowConfig, init_mlflow, train_model

        init_mlflow(MLflowConfig(tracking_uri=f"sqlite:///{Path(tmp) / 'mlflow.db'}"))
        df = make_leads(args.rows, seed=3)
        small = make_leads(2000, seed=4)
        bare(small)
        train_model(small, mlflow_model_name="warmup", metric_thresholds={"roc_auc": 0.6})
        times: dict[str, list[float]] = {"bare": [], "train_model": []}
        for _ in range(args.repeat):
            t = time.perf_counter()
            bare(df)
            times["bare"].append(time.perf_counter() - t)
            t = time.perf_counter()
            result = train_model(df, mlflow_model_name="bench", metric_thresholds={"roc_auc": 0.6})
            times["train_model"].append(time.perf_counter() - t)
    b, f = min(times["bare"]), min(times["train_model"])
    print(f"{args.rows:,} rows; last version {result.version}, {result.evaluation}")
    print(f"bare        : {b:6.2f} s (best of {args.repeat})")
    print(
        f"train_model : {f:6.2f} s (best of {args.repeat})  overhead {f - b:+.2f} s "
        f"(target <= +1.00 s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
