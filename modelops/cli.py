"""Operator CLI: ``python -m modelops`` (or ``modelops``) — inspect the registry, make data."""

from __future__ import annotations

import argparse
import json
import sys


def _cmd_sample_data(args: argparse.Namespace) -> int:
    from modelops.sample import write_leads

    path = write_leads(args.out, n_rows=args.rows, seed=args.seed)
    print(f"wrote {args.rows} rows to {path} (+ schema sidecar)")
    return 0


def _cmd_versions(args: argparse.Namespace) -> int:
    from modelops.api import get_model_metadata

    rows = get_model_metadata(args.model_name, stage=args.stage)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    if not rows:
        print(f"{args.model_name}: no versions" + (f" in stage {args.stage}" if args.stage else ""))
        return 0
    header = ("version", "stage", "aliases", "created", "run_id", "last event")
    table = [
        (
            str(r["version"]),
            r["stage"],
            ",".join(r["aliases"]) or "-",
            str(r["created"])[:19],
            r["run_id"] or "-",
            _last_event(r),
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for t in table:
        print("  ".join(c.ljust(w) for c, w in zip(t, widths, strict=True)))
    return 0


def _last_event(row: dict) -> str:
    events = row.get("audit") or []
    if not events:
        return "-"
    e = events[-1]
    return f"{e.get('action')} by {e.get('actor')} at {str(e.get('time'))[:19]}"


def _cmd_stop(args: argparse.Namespace) -> int:
    from modelops.serving import stop_local
    from modelops.settings import get_settings

    stopped = stop_local(get_settings().home.resolve(), args.model_name)
    if stopped is None:
        print(f"no local server is running for {args.model_name}")
        return 0
    print(f"stopped {args.model_name} v{stopped.version} at {stopped.url} (pid {stopped.pid})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and --help)."""
    parser = argparse.ArgumentParser(prog="modelops", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("versions", help="list a registered model's versions")
    p.add_argument("model_name")
    p.add_argument("--stage", choices=["None", "Staging", "Production", "Archived"])
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_versions)

    p = sub.add_parser("stop", help="stop the local model server the deployment flow started")
    p.add_argument("model_name")
    p.set_defaults(func=_cmd_stop)

    p = sub.add_parser("sample-data", help="write the lead-scoring sample data set")
    p.add_argument("--out", required=True, help="output .csv or .parquet path")
    p.add_argument("--rows", type=int, default=5000)
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=_cmd_sample_data)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    from modelops.errors import ModelOpsError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ModelOpsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
