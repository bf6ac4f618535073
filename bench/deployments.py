"""Benchmark: the deployed path, as a user triggers it.

    python bench/deployments.py --runs 3

Starts a real prefect server + mlflow server, deploys prefect.yaml, runs a process worker
(polling every 2 s, PREFECT_WORKER_QUERY_SECONDS; Prefect's default is 10 s), then measures:
- trigger → start: from `prefect deployment run` to the flow run's start time (warm worker);
- the whole lifecycle (train → gate → register → staging → production) on the sample data;
- the Prefect server's memory (PSS of its process tree) and the worker's.
Both workers in the same run, each on a stack of its own: the baseline, Prefect's
`prefect worker start` (a new interpreter per flow run), then `modelops worker` (`make worker`:
flow runs forked from a warm process).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from support import prefect_stack  # noqa: E402


def _memory_mb(pid: int) -> float:
    """Proportional set size of a process tree (shared pages counted once: a fork shares its
    parent's imported libraries, which RSS would count in every process)."""
    import psutil

    proc = psutil.Process(pid)
    return sum(p.memory_full_info().pss for p in [proc, *proc.children(recursive=True)]) / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for worker in ("prefect", "modelops"):
        measure(worker, args.runs)
    return 0


def measure(worker: str, runs: int) -> None:
    """Trigger deployments through a worker of this kind and print what a user waits."""
    import httpx

    with tempfile.TemporaryDirectory() as tmp, prefect_stack(Path(tmp), worker) as stack:
        api = stack["prefect"] + "/api"

        def trigger(name: str, *params: str) -> tuple[float, dict]:
            started = time.time()
            out = stack["cli"]("deployment", "run", name, *params, "--watch", timeout=900)
            assert out.returncode == 0, out.stdout + out.stderr
            run_id = re.search(r"UUID:\s*([0-9a-f-]{36})", out.stdout).group(1)  # type: ignore[union-attr]
            run = httpx.get(f"{api}/flow_runs/{run_id}", timeout=30).json()
            assert run["state_type"] == "COMPLETED", run["state"]
            return started, run

        def ts(value: str) -> float:
            return datetime.fromisoformat(value).timestamp()

        trigger("training/lead-scoring")  # warm-up: imports on disk cache, pools, db
        latencies, walls = [], []
        for _ in range(runs):
            started, run = trigger("training/lead-scoring")
            latencies.append(ts(run["start_time"]) - started)
        for _ in range(runs):
            started, run = trigger("lifecycle/lead-scoring", "-p", "promote_to=production")
            walls.append(
                (ts(run["end_time"]) - ts(run["start_time"]), ts(run["end_time"]) - started)
            )
        server_mb = _memory_mb(stack["pids"]["prefect"])
        worker_mb = _memory_mb(stack["pids"]["worker"])

    print(f"\n{worker} worker:")
    print(
        f"  trigger -> flow run start (2 s poll): "
        f"min {min(latencies):.1f} s, max {max(latencies):.1f} s over {runs} runs"
    )
    print(
        f"  lifecycle to production, sample data: run {min(w[0] for w in walls):.1f} s, "
        f"CLI trigger to end {min(w[1] for w in walls):.1f} s (best of {runs})"
    )
    print(
        f"  memory: prefect server {server_mb:.0f} MB, worker {worker_mb:.0f} MB "
        f"(PSS incl. children)"
    )


if __name__ == "__main__":
    sys.exit(main())
