"""Benchmark: model servers under the same load, in one run.

    python bench/serving.py --seconds 10 --concurrency 8 --workers 2

Servers (each with N uvicorn workers, on loopback, the same logistic-regression lead model):
- bare: FastAPI + scikit-learn, the least a server can do (a pickled pipeline, predict_proba);
- mlflow: ``mlflow models serve`` (MLflow's FastAPI scoring server);
- modelops: ``modelops serve`` with telemetry on and off, on the verified ONNX fast path and
  forced onto scikit-learn (``--no-fast-path``);
- modelops unchecked: the same ONNX server with its value checks (infinity, out of range,
  missing where the model cannot take it) switched off from outside (a ``sitecustomize`` in
  the bench's own folder, never a server option): the baseline for what the checks cost,
  reported as "value checks: +x % CPU per request" with the cost of one check timed alone.

All servers are started first and stay up; the load phases are interleaved (round 1 in one
order, round 2 in the reverse order, ...), so a slow moment of the machine does not land on one
side only. A load generator in *another process* (``tests/loadgen.py``: asyncio, keep-alive
connections) sends 1-row requests over C connections for a fixed time. The figure the load
generator cannot distort (it shares the 2 cores) is the servers' own CPU time per request (all
their processes, from /proc); also reported: p50/p99 latency, requests/s, and idle memory (RSS
of all the server's processes before any load).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

LOADGEN = ROOT / "tests" / "loadgen.py"

BARE = textwrap.dedent('''
    """The least a server can do: FastAPI, a pickled scikit-learn pipeline, predict_proba."""
    import os

    import joblib
    import pandas as pd
    from fastapi import FastAPI, Request

    model = joblib.load(os.environ["BARE_MODEL"])
    app = FastAPI()

    @app.get("/ping")
    def ping():
        return {}

    @app.post("/invocations")
    async def invocations(request: Request):
        split = (await request.json())["dataframe_split"]
        frame = pd.DataFrame(split["data"], columns=split["columns"], dtype="float64")
        return {"predictions": model.predict_proba(frame)[:, 1].round().astype(int).tolist()}
''')


# Loaded by every server process (PYTHONPATH is the bench's folder): with BENCH_UNCHECKED set,
# the value checks become a no-op, so the run has a baseline of the same server without them.
UNCHECKED = textwrap.dedent("""
    import os

    if os.environ.get("BENCH_UNCHECKED"):
        import modelops.serving.protocols as protocols

        protocols.check_values = lambda inputs, model: inputs
""")


def check_cost_us(folder: Path, payload: str) -> float:
    """Microseconds one value check of the bench's request costs, timed in this process."""
    import timeit

    from modelops.serving import protocols
    from modelops.serving.model import ServedModel

    model = ServedModel(folder, "lead-scoring", "1")
    body = payload.encode()
    inputs, _ = protocols.parse_invocation(body, "application/json", model)
    runs = 20_000
    seconds = min(timeit.repeat(lambda: protocols.check_values(inputs, model), number=runs))
    return seconds / runs * 1e6


def percentiles(values: list[float]) -> tuple[float, float]:
    import numpy as np

    arr = np.asarray(values) * 1000
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def tree(pid: int) -> list:
    import psutil

    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def cpu_seconds(pid: int) -> float:
    total = 0.0
    for p in tree(pid):
        with contextlib.suppress(Exception):
            times = p.cpu_times()
            total += times.user + times.system
    return total


def rss_mb(pid: int) -> float:
    total = 0
    for p in tree(pid):
        with contextlib.suppress(Exception):
            total += p.memory_info().rss
    return total / 2**20


@contextlib.contextmanager
def started(
    command: list[str], env: dict[str, str], url: str, probe: str = "/ping"
) -> Iterator[int]:
    from support import stop_group, wait_http

    proc = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=env.get("BENCH_CWD"),
    )
    try:
        wait_http(f"{url}{probe}", proc, timeout=180)
        time.sleep(2)  # every worker up and idle
        yield proc.pid
    finally:
        stop_group(proc)


def load(url: str, payload: str, seconds: float, concurrency: int) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            str(LOADGEN),
            f"{url}/invocations",
            payload,
            str(seconds),
            str(concurrency),
        ],
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise SystemExit(f"{url}: load failed: {out.stderr[-1000:]}")
    return dict(json.loads(out.stdout))


def measure(pid: int, url: str, payload: str, args: argparse.Namespace) -> dict:
    """One load phase: requests served, errors, the latencies, and the server's CPU seconds."""
    before = cpu_seconds(pid)
    result = load(url, payload, args.seconds, args.concurrency)
    used = cpu_seconds(pid) - before
    errors = sum(result["statuses"].values()) + result["dropped"]
    return {
        "requests": result["ok"],
        "errors": errors,
        "latencies": result["latencies"],
        "cpu_seconds": used,
        "seconds": args.seconds,
    }


def combine(name: str, phases: list[dict], idle: float) -> dict:
    """The rounds of one server as one row."""
    served = sum(p["requests"] for p in phases)
    latencies = [x for p in phases for x in p["latencies"]]
    p50, p99 = percentiles(latencies) if latencies else (float("nan"), float("nan"))
    return {
        "server": name,
        "requests": served,
        "errors": sum(p["errors"] for p in phases),
        "rps": served / sum(p["seconds"] for p in phases),
        "p50_ms": p50,
        "p99_ms": p99,
        "cpu_ms_per_request": sum(p["cpu_seconds"] for p in phases) * 1000 / max(served, 1),
        "idle_rss_mb": idle,
    }


@contextlib.contextmanager
def tracking_store(tmp: Path, args: argparse.Namespace) -> Iterator[str]:
    """Where models are registered and telemetry goes: a SQLite file, or an `mlflow server`."""
    if args.tracking == "sqlite":
        yield f"sqlite:///{tmp / 'mlflow.db'}"
        return
    from modelops.serving.local import free_port

    port = free_port()
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{tmp / 'server.db'}",
        "--artifacts-destination",
        (tmp / "artifacts").as_uri(),
        "--workers",
        "1",
    ]
    with started(command, dict(os.environ), f"http://127.0.0.1:{port}", probe="/health"):
        yield f"http://127.0.0.1:{port}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="load phases per server, interleaved (default: %(default)s)",
    )
    parser.add_argument("--only", nargs="*", help="server names to run (default: all)")
    parser.add_argument(
        "--tracking",
        choices=["server", "sqlite"],
        default="server",
        help="telemetry goes to an `mlflow server` over HTTP, as in production "
        "(default), or straight into a SQLite store",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name, tracking_store(Path(tmp_name), args) as store:
        tmp = Path(tmp_name)
        env = {
            **os.environ,
            "MODELOPS_HOME": str(tmp / "home"),
            "MLFLOW_TRACKING_URI": store,
            "MLFLOW_EXPERIMENT_NAME": "bench",
            "BENCH_CWD": str(tmp),
        }
        os.environ.update({k: v for k, v in env.items() if k != "BENCH_CWD"})
        import joblib
        from support import register_fixture_version

        from modelops import promote_model
        from modelops.model_io import load_sklearn
        from modelops.sample import make_leads
        from modelops.serving.local import free_port
        from modelops.tracking import get_client

        version = register_fixture_version()
        promote_model("lead-scoring", version, "Production")
        model, _ = load_sklearn(get_client(store), "lead-scoring", version)
        joblib.dump(model, tmp / "model.joblib")
        (tmp / "bare_server.py").write_text(BARE)
        (tmp / "sitecustomize.py").write_text(UNCHECKED)
        row = make_leads(1, seed=5).drop(columns="won").astype("float64")
        payload = json.dumps(
            {"dataframe_split": json.loads(row.to_json(orient="split", index=False))}
        )
        python, workers = sys.executable, str(args.workers)
        servers = {
            "bare": (
                [
                    python,
                    "-m",
                    "uvicorn",
                    "bare_server:app",
                    "--workers",
                    workers,
                    "--log-level",
                    "warning",
                    "--no-access-log",
                ],
                {"BARE_MODEL": str(tmp / "model.joblib")},
            ),
            "mlflow": (
                [
                    python,
                    "-m",
                    "mlflow",
                    "models",
                    "serve",
                    "-m",
                    f"models:/lead-scoring/{version}",
                    "--workers",
                    workers,
                    "--env-manager",
                    "local",
                ],
                {},
            ),
            "modelops onnx, telemetry on": (
                [python, "-m", "modelops", "serve", "lead-scoring", "--workers", workers],
                {},
            ),
            "modelops onnx, telemetry off": (
                [python, "-m", "modelops", "serve", "lead-scoring", "--workers", workers],
                {"MODELOPS_DISABLE_RUNTIME_LOGGING": "true"},
            ),
            "modelops onnx, off, unchecked": (
                [python, "-m", "modelops", "serve", "lead-scoring", "--workers", workers],
                {"MODELOPS_DISABLE_RUNTIME_LOGGING": "true", "BENCH_UNCHECKED": "1"},
            ),
            "modelops sklearn, telemetry on": (
                [
                    python,
                    "-m",
                    "modelops",
                    "serve",
                    "lead-scoring",
                    "--workers",
                    workers,
                    "--no-fast-path",
                ],
                {},
            ),
        }
        chosen = {k: v for k, v in servers.items() if not args.only or k in args.only}
        with contextlib.ExitStack() as stack:
            running = {}
            for name, (command, extra) in chosen.items():
                port = free_port()
                if name == "bare":
                    command = [*command, "--host", "127.0.0.1", "--port", str(port)]
                else:
                    command = [*command, "--port" if "modelops" in name else "-p", str(port)]
                server_env = {
                    **env,
                    **extra,
                    "PYTHONPATH": str(tmp),
                    "PATH": f"{Path(python).parent}{os.pathsep}{env['PATH']}",
                }
                url = f"http://127.0.0.1:{port}"
                pid = stack.enter_context(started(command, server_env, url))
                running[name] = (pid, url, rss_mb(pid))
                load(url, payload, 2, 2)  # warm: every worker has answered
            phases: dict[str, list[dict]] = {name: [] for name in running}
            for round_ in range(args.rounds):
                order = list(running) if round_ % 2 == 0 else list(reversed(running))
                for name in order:
                    pid, url, _ = running[name]
                    phases[name].append(measure(pid, url, payload, args))
                    print(
                        f"round {round_ + 1} {name}: {phases[name][-1]['requests']} requests",
                        flush=True,
                    )
        rows = [combine(name, phases[name], running[name][2]) for name in running]
        served = Path(env["MODELOPS_HOME"]) / "serving" / "models" / "lead-scoring" / f"v{version}"
        one_check = check_cost_us(served, payload) if served.is_dir() else float("nan")
    bare = next((r for r in rows if r["server"] == "bare"), None)
    mlflow = next((r for r in rows if r["server"] == "mlflow"), None)
    print(
        f"\n1-row requests, {args.concurrency} connections from another process, "
        f"{args.rounds} x {args.seconds:.0f} s each, interleaved, {args.workers} workers per "
        f"server (2 cores shared); "
        f"telemetry to {'an mlflow server' if args.tracking == 'server' else 'SQLite'}\n"
    )
    print(
        f"{'server':<32} {'CPU ms/req':>10} {'vs bare':>8} {'req/s':>8} {'vs bare':>8} "
        f"{'vs mlflow':>9} {'p50 ms':>7} {'p99 ms':>7} {'idle MB':>8} {'errors':>6}"
    )
    for r in rows:
        cpu_ratio = r["cpu_ms_per_request"] / bare["cpu_ms_per_request"] if bare else float("nan")
        rps_ratio = r["rps"] / bare["rps"] if bare else float("nan")
        vs_mlflow = r["rps"] / mlflow["rps"] if mlflow else float("nan")
        print(
            f"{r['server']:<32} {r['cpu_ms_per_request']:>10.2f} {cpu_ratio:>7.2f}x "
            f"{r['rps']:>8.1f} {rps_ratio:>7.2f}x {vs_mlflow:>8.2f}x {r['p50_ms']:>7.1f} "
            f"{r['p99_ms']:>7.1f} {r['idle_rss_mb']:>8.0f} {r['errors']:>6}"
        )
    by_name = {r["server"]: r for r in rows}
    checked = by_name.get("modelops onnx, telemetry off")
    unchecked = by_name.get("modelops onnx, off, unchecked")
    if checked and unchecked:
        extra = checked["cpu_ms_per_request"] / unchecked["cpu_ms_per_request"] - 1
        print(
            f"\nvalue checks: {extra:+.1%} server CPU per request (telemetry off, checked vs "
            f"unchecked); one check alone {one_check:.1f} us = "
            f"{one_check / 1000 / unchecked['cpu_ms_per_request']:.2%} of a request's CPU"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
