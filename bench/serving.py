"""Benchmark: the `local` model server under concurrent load vs in-process predict_proba.

    python bench/serving.py --seconds 10 --concurrency 8 --workers 2

Starts the scoring server exactly as the deployment flow's local target does (mlflow models
serve, FastAPI/uvicorn, N workers), then a load generator in *another process* sends 1-row and
100-row requests over loopback with C concurrent connections for a fixed time. The baseline is
predict_proba on the same rows in this process, on the same model. Reports p50/p99 latency and
throughput for each.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")

LOAD = r"""
import json, sys, threading, time, httpx
url, payload, seconds, concurrency = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
lat, errors = [], [0]
stop = time.monotonic() + seconds
def worker():
    with httpx.Client(timeout=30) as c:
        while time.monotonic() < stop:
            t = time.perf_counter()
            try:
                r = c.post(url, json=payload)
            except Exception as exc:
                errors[0] += 1
                print(repr(exc), file=sys.stderr)
                continue
            if r.status_code == 200: lat.append(time.perf_counter() - t)
            else:
                errors[0] += 1
                if errors[0] == 1: print(r.status_code, r.text[:300], file=sys.stderr)
threads = [threading.Thread(target=worker) for _ in range(concurrency)]
[t.start() for t in threads]; [t.join() for t in threads]
print(json.dumps({"latencies": lat, "errors": errors[0], "seconds": seconds}))
"""


def percentiles(values: list[float]) -> tuple[float, float]:
    import numpy as np

    arr = np.asarray(values) * 1000
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        os.environ["MODELOPS_HOME"] = str(tmp)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'mlflow.db'}"
        import pandas as pd
        from support import register_fixture_version

        from modelops.model_io import load_sklearn
        from modelops.sample import make_leads
        from modelops.serving.local import start_local_server, stop_server
        from modelops.tracking import get_client

        version = register_fixture_version()
        uri = os.environ["MLFLOW_TRACKING_URI"]
        model = load_sklearn(get_client(uri), "lead-scoring", version)[0]
        rows = make_leads(100, seed=5).drop(columns="won").astype("float64")
        server = start_local_server(tmp, uri, "lead-scoring", version, workers=args.workers)
        print(f"server: mlflow models serve, {args.workers} uvicorn workers, {server.url}; "
              f"load: {args.concurrency} connections from another process, {args.seconds:.0f} s each")  # fmt: skip
        try:
            for n in (1, 100):
                frame = rows.head(n)
                payload = json.dumps(
                    {"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}
                )
                out = subprocess.run(
                    [sys.executable, "-c", LOAD, f"{server.url}/invocations", payload,
                     str(args.seconds), str(args.concurrency)],
                    capture_output=True, text=True, check=False,
                )  # fmt: skip
                if out.returncode:
                    raise SystemExit(f"load generator failed: {out.stderr[-2000:]}")
                result = json.loads(out.stdout)
                if not result["latencies"]:
                    raise SystemExit(f"every request failed: {result}")
                p50, p99 = percentiles(result["latencies"])
                rps = len(result["latencies"]) / result["seconds"]
                bare = []
                stop = time.monotonic() + min(args.seconds, 3)
                while time.monotonic() < stop:
                    t = time.perf_counter()
                    model.predict_proba(pd.DataFrame(frame))
                    bare.append(time.perf_counter() - t)
                b50, b99 = percentiles(bare)
                print(f"{n:>3}-row requests: server p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  "
                      f"{rps:7.1f} req/s ({rps * n:8.0f} rows/s), errors {result['errors']}")  # fmt: skip
                print(f"{'':>16}  bare   p50 {b50:6.2f} ms  p99 {b99:6.2f} ms  "
                      f"{len(bare) / min(args.seconds, 3):7.1f} calls/s (1 thread)")  # fmt: skip
        finally:
            stop_server(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
