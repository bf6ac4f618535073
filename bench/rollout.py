"""Benchmark: what a rollout costs the model server, and what its analysis costs, in one run.

    python bench/rollout.py --seconds 10 --concurrency 8 --rounds 2

Servers (one uvicorn worker each, on loopback, the same lead model; telemetry off so that only
the rollout's own work differs):
- single: ``modelops serve MODEL`` (version 1 alone): the baseline;
- canary: ``--candidate 2 --mode canary --weight 0.1``;
- shadow: ``--candidate 2 --mode shadow`` (the candidate scores every request after the answer).

As in ``bench/serving.py``, the load phases are interleaved and the figure is the server's own
CPU time per request (all its processes, from /proc) with the client's p50/p99, reported as
ratios to single-version serving; then one client at a fixed rate the servers can all sustain
(``--rate``), whose p50 shows whether the shadow's scoring is on the request path. Then
``/feedback``: labels for the shadow server's answered
requests, one label per request (from one client and from four at once, each beside the bare
round trips of the same client to ``/ping``) and 100 per request, in labels per second. Last, the analysis
of a step with ``--pairs`` paired requests (every one labelled), against the bare work of the
same figures: two ``roc_auc_score`` calls and two percentiles.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from bench.serving import combine, measure, percentiles, started  # noqa: E402


def synthetic_evidence(pairs: int) -> dict:
    """``pairs`` shadow requests of one row, each labelled, as ``/rollout/evidence`` gives them."""
    import numpy as np

    rng = np.random.default_rng(0)
    signal = rng.normal(size=pairs)
    truth = (rng.random(pairs) < 1 / (1 + np.exp(-3 * signal))).astype(int).tolist()
    stable = (1 / (1 + np.exp(-3 * signal))).tolist()
    candidate = (1 / (1 + np.exp(-3 * (signal + 0.1 * rng.normal(size=pairs))))).tolist()
    seconds = (0.001 + 0.001 * rng.random(2 * pairs)).tolist()
    evidence: dict = {"stable": "1", "candidate": "2", "mode": "shadow", "classes": [0, 1]}
    evidence["request_id"] = [f"r{i}" for i in range(pairs) for _ in (0, 1)]
    evidence["version"] = ["1", "2"] * pairs
    evidence["answered"] = [1, 0] * pairs
    evidence["status"] = [200] * (2 * pairs)
    evidence["seconds"] = seconds
    evidence["at"] = [1000.0 + i for i in range(pairs) for _ in (0, 1)]
    evidence["scores"] = [[s] for pair in zip(stable, candidate, strict=True) for s in pair]
    evidence["predictions"] = [[int(s[0] >= 0.5)] for s in evidence["scores"]]
    evidence["labels"] = [[y] for y in truth for _ in (0, 1)]
    return evidence


def time_analysis(pairs: int) -> tuple[float, float, str]:
    """Seconds of the analysis, and of the bare figures, on the same evidence."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from modelops.rollouts.analysis import Criteria, analyse

    evidence = synthetic_evidence(pairs)
    started_at = time.perf_counter()
    result = analyse(evidence, Criteria())
    analysis = time.perf_counter() - started_at
    started_at = time.perf_counter()
    labels = np.asarray([y[0] for y in evidence["labels"]])
    scores = np.asarray([s[0] for s in evidence["scores"]])
    seconds = np.asarray(evidence["seconds"])
    for side in (0, 1):
        roc_auc_score(labels[side::2], scores[side::2])
        np.percentile(seconds[side::2], [50, 99])
    bare = time.perf_counter() - started_at
    return analysis, bare, result.verdict


def feedback_rate(
    url: str, request_ids: list[str], per_request: int, clients: int = 1, path: str = "/feedback"
) -> float:
    """Labels per second ``path`` takes, ``per_request`` labels in each POST, from ``clients``
    connections at once (``path="/ping"``: the same POSTs' round trips with nothing stored,
    the client's and HTTP's own cost)."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    chunks = [request_ids[i : i + per_request] for i in range(0, len(request_ids), per_request)]

    def send(share: list[list[str]]) -> None:
        with httpx.Client(timeout=60) as client:
            for chunk in share:
                body = [{"request_id": i, "label": 1} for i in chunk]
                r = client.request("GET" if path == "/ping" else "POST", f"{url}{path}", json=body)
                r.raise_for_status()

    started_at = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(send, [chunks[k::clients] for k in range(clients)]))
    return len(request_ids) / (time.perf_counter() - started_at)


def paced_latency(url: str, payload: str, rate: float, seconds: float) -> list[float]:
    """Latencies (seconds) of one client sending ``rate`` requests per second for ``seconds``
    (open loop: a request leaves at its time whatever the last one took): what one user sees
    of a server that is not saturated, where a shadow's extra work shows only if it is on the
    request path."""
    import httpx

    latencies = []
    headers = {"Content-Type": "application/json"}
    with httpx.Client(timeout=30) as client:
        start = time.perf_counter()
        for k in range(int(rate * seconds)):
            wait = start + k / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            sent = time.perf_counter()
            client.post(f"{url}/invocations", content=payload, headers=headers).raise_for_status()
            latencies.append(time.perf_counter() - sent)
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--labels", type=int, default=3000, help="labels sent per feedback run")
    parser.add_argument("--rate", type=float, default=200, help="requests/s of the paced client")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        env = {
            **os.environ,
            "MODELOPS_HOME": str(tmp / "home"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}",
            "MLFLOW_EXPERIMENT_NAME": "bench",
            "MODELOPS_DISABLE_RUNTIME_LOGGING": "true",
            "BENCH_CWD": str(tmp),
        }
        os.environ.update({k: v for k, v in env.items() if k != "BENCH_CWD"})
        from support import register_fixture_version

        from modelops import promote_model
        from modelops.sample import make_leads
        from modelops.serving.local import free_port

        promote_model("lead-scoring", register_fixture_version(), "Production")
        register_fixture_version(stage=False)
        row = make_leads(1, seed=5).drop(columns="won").astype("float64")
        payload = json.dumps(
            {"dataframe_split": json.loads(row.to_json(orient="split", index=False))}
        )
        base = [sys.executable, "-m", "modelops", "--no-warm", "serve", "lead-scoring"]
        servers = {
            "single": base,
            "canary 0.1": [*base, "--candidate", "2", "--mode", "canary", "--weight", "0.1"],
            "shadow": [*base, "--candidate", "2", "--mode", "shadow"],
        }
        phases: dict[str, list[dict]] = {name: [] for name in servers}
        rates: dict[int | str, float] = {}
        with contextlib.ExitStack() as stack:
            running = {}
            for name, command in servers.items():
                port = free_port()
                url = f"http://127.0.0.1:{port}"
                pid = stack.enter_context(started([*command, "--port", str(port)], env, url))
                running[name] = (pid, url)
            for round_ in range(args.rounds):
                order = list(servers) if round_ % 2 == 0 else list(reversed(servers))
                for name in order:
                    pid, url = running[name]
                    phases[name].append(measure(pid, url, payload, args))
            import httpx

            paced: dict[str, list[float]] = {name: [] for name in servers}
            for round_ in range(args.rounds):
                order = list(servers) if round_ % 2 == 0 else list(reversed(servers))
                for name in order:
                    latencies = paced_latency(running[name][1], payload, args.rate, args.seconds)
                    paced[name] += latencies
            about = httpx.get(f"{running['canary 0.1'][1]}/version", timeout=30).json()
            engines = f"{about['engine']} and {about['rollout']['candidate']['engine']}"
            _, shadow_url = running["shadow"]
            evidence = httpx.get(f"{shadow_url}/rollout/evidence", timeout=120).json()
            answered = [
                rid
                for rid, version in zip(evidence["request_id"], evidence["version"], strict=True)
                if version == "1"
            ]
            if len(answered) < 3 * args.labels:
                raise SystemExit(f"only {len(answered)} answered requests to label")
            thirds = [answered[k * args.labels : (k + 1) * args.labels] for k in range(3)]
            rates["bare"] = feedback_rate(shadow_url, thirds[0], 1, path="/ping")
            rates[1] = feedback_rate(shadow_url, thirds[0], 1)
            rates["bare 4"] = feedback_rate(shadow_url, thirds[1], 1, 4, path="/ping")
            rates["1 x4"] = feedback_rate(shadow_url, thirds[1], 1, 4)
            rates[100] = feedback_rate(shadow_url, thirds[2], 100)
    rows = {name: combine(name, p, 0.0) for name, p in phases.items()}
    print(f"engines (stable and candidate): {engines}")
    single = rows["single"]
    print(f"{'server':<12} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/req':>11} ratios")
    for name, r in rows.items():
        print(
            f"{name:<12} {r['rps']:>8.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
            f"{r['cpu_ms_per_request']:>11.3f} CPU {r['cpu_ms_per_request'] / single['cpu_ms_per_request']:.2f}x, "
            f"p50 {r['p50_ms'] / single['p50_ms']:.2f}x, errors {r['errors']}"
        )
    alone = percentiles(paced["single"])[0]
    print(f"one client at {args.rate:g} requests/s (the servers not saturated):")
    for name, latencies in paced.items():
        p50, p99 = percentiles(latencies)
        print(f"  {name:<12} p50 {p50:.2f} ms ({p50 / alone:.2f}x), p99 {p99:.2f} ms")
    print(
        f"/feedback, one label per request: {rates[1]:.0f} labels/s from one client "
        f"(bare round trips {rates['bare']:.0f}/s, {rates[1] / rates['bare']:.2f}x), "
        f"{rates['1 x4']:.0f} labels/s from four (bare {rates['bare 4']:.0f}/s, "
        f"{rates['1 x4'] / rates['bare 4']:.2f}x); 100 per request: {rates[100]:.0f} labels/s"
    )
    analysis, bare, verdict = time_analysis(args.pairs)
    print(
        f"analysis of {args.pairs:,} paired labelled requests: {analysis:.2f} s "
        f"(bare roc_auc + percentiles {bare:.2f} s, {analysis / bare:.1f}x; verdict {verdict})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
