"""Benchmark: `mlModelVersions` for a model with 200 versions against the bare MlflowClient calls.

    python bench/api.py --versions 200 [--repeat 5]

Builds a SQLite store with one model of N versions, each from its own run (params, metrics)
under a parent run (more metrics), starts `modelops api` on loopback, and times, best of
--repeat, in one run:
  bare batched: search_model_versions + get_registered_model (aliases) + search_runs in batches
                of 100 for the runs and their parents — the fewest client calls for the data;
  bare naive:   the same with one get_run per version and per parent (what scripts often do);
  api:          the GraphQL query over HTTP with a bearer token (auth, JSON, the same data).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import quiet_environment  # noqa: E402

quiet_environment()
SECRET = "bench-secret-0123456789abcdef0123456789"
QUERY = """query($m: String!) { mlModelVersions(modelName: $m) { version status createdAt runId
  params metrics aliases tags source } }"""


def build(uri: str, versions: int) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiment = client.create_experiment("bench")
    client.create_registered_model("bench-model")
    for i in range(versions):
        parent = client.create_run(experiment).info.run_id
        client.log_metric(parent, "roc_auc", 0.7 + i / 10_000)
        child = client.create_run(experiment, tags={"mlflow.parentRunId": parent}).info.run_id
        for k in ("C", "max_iter", "solver", "penalty"):
            client.log_param(child, k, str(i))
        client.log_metric(child, "fit_seconds", i / 100)
        client.create_model_version("bench-model", f"runs:/{child}/model", run_id=child)
    client.set_registered_model_alias("bench-model", "production", "1")


def bare_batched(uri: str) -> int:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    versions = client.search_model_versions("name = 'bench-model'", max_results=10_000)
    client.get_registered_model("bench-model")
    experiments = [e.experiment_id for e in client.search_experiments()]

    def runs(ids: list[str]) -> dict:
        out = {}
        for start in range(0, len(ids), 100):
            chunk = ", ".join(f"'{i}'" for i in ids[start : start + 100])
            for run in client.search_runs(
                experiments, f"attributes.run_id IN ({chunk})", max_results=100
            ):
                out[run.info.run_id] = run
        return out

    children = runs([v.run_id for v in versions])
    runs([r.data.tags["mlflow.parentRunId"] for r in children.values()])
    return len(versions)


def bare_naive(uri: str) -> int:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    versions = client.search_model_versions("name = 'bench-model'", max_results=10_000)
    client.get_registered_model("bench-model")
    for v in versions:
        run = client.get_run(v.run_id)
        client.get_run(run.data.tags["mlflow.parentRunId"])
    return len(versions)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--versions", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    import httpx
    import jwt

    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        build(uri, args.versions)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": uri,
            "MODELOPS_API_JWT_SECRET": SECRET,
            "MODELOPS_HOME": tmp,
        }
        log = open(Path(tmp) / "api.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "modelops", "api", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(600):
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            token = jwt.encode({"sub": "bench", "exp": int(time.time()) + 3600}, SECRET)
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(timeout=120) as http:

                def api() -> int:
                    body = http.post(
                        f"{url}/graphql",
                        headers=headers,
                        json={"query": QUERY, "variables": {"m": "bench-model"}},
                    ).json()
                    return len(body["data"]["mlModelVersions"])

                sides = {
                    "bare batched": lambda: bare_batched(uri),
                    "bare naive": lambda: bare_naive(uri),
                    "api": api,
                }
                times: dict[str, list[float]] = {k: [] for k in sides}
                for fn in sides.values():
                    fn()  # warm
                for _ in range(args.repeat):
                    for name, fn in sides.items():
                        t = time.perf_counter()
                        assert fn() == args.versions
                        times[name].append(time.perf_counter() - t)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            log.close()
    base = min(times["bare batched"])
    for name, values in times.items():
        print(f"{name:<13} {min(values) * 1000:8.1f} ms  ({min(values) / base:.2f}x bare batched)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
