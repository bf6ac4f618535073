"""Benchmark: the command line as a user meets it, against a cold bare script, in one run.

    python bench/cli.py --rows 100000

In a fresh MODELOPS_HOME (no PREFECT_API_URL): (a) the bare script (bench/lifecycle.py's
`bare`: read, split, fit, predict, metrics) as a new interpreter, cold; (b) the very first
`modelops train` (it starts the local Prefect server and leaves it and the warm process
running), against the same first command with `MODELOPS_PREFECT=temporary` (as before); then,
with both running, `modelops versions`, `modelops train --force` and `modelops train --help`,
each warm and cold (`MODELOPS_WARM=false`). Best of --repeat; the memory (PSS) of what stays
running. Not a timed test: run it by hand.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import quiet_environment  # noqa: E402

quiet_environment()
MODELOPS = str(Path(sys.executable).with_name("modelops"))


def _time(argv: list[str], env: dict[str, str], repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=ROOT)
        best = min(best, time.perf_counter() - t)
        if done.returncode not in (0,):
            raise SystemExit(f"{argv} failed ({done.returncode}): {done.stderr[-2000:]}")
    return best


def _pss_mb(pids: list[int]) -> float:
    import psutil

    total = 0
    for pid in pids:
        proc = psutil.Process(pid)
        total += sum(p.memory_full_info().pss for p in [proc, *proc.children(recursive=True)])
    return total / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from modelops.cli import warm
    from modelops.orchestration import local_server
    from modelops.sample import write_leads

    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        data = write_leads(Path(tmp) / "leads.csv", n_rows=args.rows, seed=3)
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("MODELOPS_", "MLFLOW_"))}
        keep.pop("PREFECT_API_URL", None)
        home = Path(tmp) / "home"
        env = {**keep, "MODELOPS_HOME": str(home), "HOME": tmp}
        temp_env = {**env, "MODELOPS_HOME": str(Path(tmp) / "temp-home")}
        temp_env["MODELOPS_PREFECT"] = "temporary"
        script = f"from bench.lifecycle import bare; bare({str(data)!r})"
        bare = _time([sys.executable, "-c", script], env, args.repeat)
        train = [MODELOPS, "train", "--data", str(data), "--force"]
        temporary_first = _time(train, temp_env)
        first = _time(train, env)
        try:
            socket = warm.socket_for(home.resolve())
            deadline = time.monotonic() + 120
            while not os.path.exists(socket) and time.monotonic() < deadline:
                time.sleep(0.2)
            cold_env = {**env, "MODELOPS_WARM": "false"}
            rows = []
            for name, argv in (
                ("versions", [MODELOPS, "versions", "lead-scoring"]),
                ("train --force", train),
                ("train --help", [MODELOPS, "train", "--help"]),
            ):
                rows.append(
                    (name, _time(argv, env, args.repeat), _time(argv, cold_env, args.repeat))
                )
            server = local_server.status(home.resolve())
            assert server is not None
            import psutil

            warm_pids = [
                p.pid
                for p in psutil.process_iter(["cmdline"])
                if socket in (p.info["cmdline"] or [])
            ]
            memory = (_pss_mb([server.pid]), _pss_mb(warm_pids))
        finally:
            local_server.stop(home.resolve())
    print(f"rows: {args.rows}; best of {args.repeat}")
    print(f"bare script, cold          : {bare:6.2f} s")
    print(f"first command (temporary)  : {temporary_first:6.2f} s  (a server per command)")
    print(
        f"first command (local)      : {first:6.2f} s  ({first / temporary_first:.2f}x; "
        "leaves the server and warm process running)"
    )
    print(f"{'with both running':27s}  warm      cold   ratio")
    for name, w, c in rows:
        extra = f"  ({w / bare:.2f}x bare)" if name.startswith("train --force") else ""
        print(f"  {name:25s}: {w:6.2f} s {c:6.2f} s  {w / c:5.2f}{extra}")
    print(f"memory (PSS): Prefect server {memory[0]:.0f} MB, warm process {memory[1]:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
