"""Two versions in one server (`modelops serve --candidate`), as a real process spoken to over
HTTP: shadow answers exactly what stable-only serving answers, canary splits by its weight and
honours the sticky header, every answer names its version, and /feedback takes labels once and
refuses bad ones with nothing stored."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from support_serving import serving

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Version 1 in production (a real model) and version 2 in staging (trained on shuffled
    labels: a candidate that must lose)."""
    from support import register_fixture_version

    from modelops import promote_model

    folder = tmp_path_factory.mktemp("rollout-serving")
    env = {
        "MODELOPS_HOME": str(folder),
        "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}",
        "MLFLOW_EXPERIMENT_NAME": "rollout-serving",
        "MODELOPS_DISABLE_RUNTIME_LOGGING": "true",
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        register_fixture_version("rollout model")
        promote_model("rollout model", 1, "Production")
        register_fixture_version("rollout model", good=False)
        yield {"env": env, "folder": folder}


def _rows(n: int, seed: int = 3) -> pd.DataFrame:
    from modelops.sample import make_leads

    return make_leads(n, seed=seed).drop(columns="won")


def _one_row_payloads(n: int) -> list[dict[str, Any]]:
    split = json.loads(_rows(n).to_json(orient="split", index=False))
    return [
        {"dataframe_split": {"columns": split["columns"], "data": [row]}} for row in split["data"]
    ]


def _answers(url: str, payloads: list[dict], headers: list[dict] | None = None) -> list[Any]:
    out = []
    with httpx.Client(timeout=30) as client:
        for i, payload in enumerate(payloads):
            r = client.post(
                f"{url}/invocations", json=payload, headers=(headers or [{}] * len(payloads))[i]
            )
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["model_version"] == r.headers["X-Model-Version"]
            assert body["mlflow_run_id"] == r.headers["X-MLflow-Run-Id"]
            out.append((r.headers["X-Request-Id"], body["model_version"], body["predictions"]))
    return out


def test_shadow_answers_exactly_what_stable_only_serving_answers(store: dict[str, Any]) -> None:
    payloads = _one_row_payloads(60)
    with serving("rollout model", env=store["env"]) as alone:
        expected = _answers(alone, payloads)
    with serving("rollout model", "--candidate", "staging", env=store["env"]) as url:
        got = _answers(url, payloads)
        about = httpx.get(f"{url}/version").json()
        evidence = _evidence(url, want=2 * len(payloads))
    assert [a[1:] for a in got] == [e[1:] for e in expected]
    assert {version for _, version, _ in got} == {"1"}
    assert about["model_version"] == "1" and about["rollout"]["mode"] == "shadow"
    assert about["rollout"]["candidate"]["model_version"] == "2"
    # Both versions scored every request, paired by request id; only the stable one answered.
    pairs: dict[str, dict[str, Any]] = {}
    for rid, version, answered in zip(
        evidence["request_id"], evidence["version"], evidence["answered"], strict=True
    ):
        pairs.setdefault(rid, {})[version] = answered
    assert set(pairs) == {rid for rid, _, _ in got}
    assert all(p == {"1": 1, "2": 0} for p in pairs.values())


def _evidence(url: str, want: int) -> dict[str, Any]:
    """The server's evidence once it holds ``want`` answers (shadow scores land after the
    answer went)."""
    import time

    deadline = time.monotonic() + 30
    while True:
        evidence = httpx.get(f"{url}/rollout/evidence", timeout=30).json()
        if len(evidence["request_id"]) >= want or time.monotonic() > deadline:
            return evidence
        time.sleep(0.05)


def test_canary_splits_by_weight_and_honours_the_sticky_header(store: dict[str, Any]) -> None:
    payloads = _one_row_payloads(1) * 400
    weight = 0.3
    args = ["--candidate", "2", "--mode", "canary", "--weight", str(weight)]
    with serving("rollout model", *args, "--sticky-header", "X-User-Id", env=store["env"]) as url:
        free = _answers(url, payloads)
        users = [{"X-User-Id": f"user-{i % 40}"} for i in range(len(payloads))]
        sticky = _answers(url, payloads, users)
        metrics = httpx.get(f"{url}/metrics").text
    share = Counter(v for _, v, _ in free)["2"] / len(free)
    tolerance = 4 * math.sqrt(weight * (1 - weight) / len(free))  # four standard deviations
    assert abs(share - weight) < tolerance, share
    met: dict[str, set[str]] = {}
    for (_, version, _), user in zip(sticky, users, strict=True):
        met.setdefault(user["X-User-Id"], set()).add(version)
    assert all(len(versions) == 1 for versions in met.values())
    assert {v for versions in met.values() for v in versions} == {"1", "2"}
    for version in ("1", "2"):  # a series per version
        assert (
            f'modelops_requests_total{{code="200",model="rollout model",version="{version}"}}'
            in metrics
        )


def test_feedback_is_taken_once_and_bad_feedback_stores_nothing(store: dict[str, Any]) -> None:
    with serving("rollout model", "--candidate", "staging", env=store["env"]) as url:
        (rid, _, _), (other, _, _) = _answers(url, _one_row_payloads(2))
        three = httpx.post(
            f"{url}/invocations",
            json={"dataframe_split": json.loads(_rows(3).to_json(orient="split", index=False))},
        ).headers["X-Request-Id"]
        before = httpx.get(f"{url}/version").json()["rollout"]["evidence"]["labels"]
        bad = [
            ({"request_id": "no-such-request", "label": 1}, 400, "Unknown request id"),
            ({"request_id": rid, "label": "maybe"}, 400, "does not know the label"),
            ({"request_id": rid}, 400, "exactly request_id and label"),
            ([{"request_id": rid, "label": 1}, {"request_id": "nope", "label": 0}], 400, "nope"),
            ({"request_id": three, "label": 1}, 400, "one label per row"),
            ([], 400, "between 1 and"),
        ]
        for body, status, words in bad:
            r = httpx.post(f"{url}/feedback", json=body)
            assert r.status_code == status and words in r.json()["message"], r.text
            assert "\n" not in r.json()["message"]
        r = httpx.post(f"{url}/feedback", content=b"{not json")
        assert r.status_code == 400 and "not valid JSON" in r.json()["message"]
        assert httpx.get(f"{url}/version").json()["rollout"]["evidence"]["labels"] == before == 0
        first = httpx.post(
            f"{url}/feedback",
            json=[{"request_id": rid, "label": "1"}, {"request_id": three, "label": [0, 1, 1]}],
        )
        assert first.status_code == 200 and first.json() == {"accepted": 2, "already_known": 0}
        again = httpx.post(f"{url}/feedback", json={"request_id": rid, "label": 1})
        assert again.json() == {"accepted": 0, "already_known": 1}
        changed = httpx.post(f"{url}/feedback", json={"request_id": rid, "label": 0})
        assert changed.status_code == 409 and "cannot be changed" in changed.json()["message"]
        httpx.post(f"{url}/feedback", json={"request_id": other, "label": 0.0}).raise_for_status()
        evidence = _evidence(url, want=6)
    labels = {
        r: lab
        for r, lab, v in zip(
            evidence["request_id"], evidence["labels"], evidence["version"], strict=True
        )
        if v == "1"
    }
    assert labels[rid] == [1] and labels[three] == [0, 1, 1] and labels[other] == [0]


def test_bad_split_options_are_refused_before_anything_starts(store: dict[str, Any]) -> None:
    folder: Path = store["folder"]
    before = sorted((folder / "serving").rglob("*.db"))
    cases = [
        (
            ["--candidate", "staging", "--mode", "canary", "--weight", "1.5"],
            "strictly between 0 and 1",
        ),
        (
            ["--candidate", "staging", "--mode", "canary", "--weight", "0"],
            "strictly between 0 and 1",
        ),
        (["--weight", "0.2"], "add --candidate"),
        (["--candidate", "staging", "--weight", "0.2"], "for --mode canary"),
        (["--candidate", "production"], "already answers"),
        (["--candidate", "7"], "7"),
        (
            ["--candidate", "staging", "--mode", "canary", "--sticky-header", "X User"],
            "header name",
        ),
    ]
    for args, words in cases:
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "modelops",
                "--no-warm",
                "serve",
                "rollout model",
                *args,
                "--port",
                "1",
            ],
            env={**os.environ, **store["env"]},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 2, (args, run.stdout, run.stderr)
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], (args, run.stderr)
    assert sorted((folder / "serving").rglob("*.db")) == before  # no evidence file begun


def test_a_rollout_holds_the_split_with_its_token_and_loses_it_when_it_stops_renewing(
    store: dict[str, Any],
) -> None:
    import time

    env = {
        **store["env"],
        "MODELOPS_ROLLOUT_TOKEN": "s3cret-token",
        "MODELOPS_ROLLOUT_LEASE_SECONDS": "3",
    }
    args = ["--candidate", "2", "--mode", "canary", "--weight", "0.5"]
    payloads = _one_row_payloads(1) * 60
    with serving("rollout model", *args, env=env) as url:
        split = f"{url}/rollout/traffic"
        assert httpx.put(split, json={"weight": 0.9}).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert httpx.put(split, json={"weight": 0.9}, headers=wrong).status_code == 401
        token = {"Authorization": "Bearer s3cret-token"}
        bad = httpx.put(split, json={"weight": 2}, headers=token)
        assert bad.status_code == 400 and "weight must be in (0, 1)" in bad.json()["message"]
        moved = httpx.put(split, json={"weight": 0.9, "lease_seconds": 3}, headers=token)
        assert moved.json()["weight"] == 0.9 and moved.json()["in_traffic"] is True
        time.sleep(0.5)  # every worker reads the split within a fraction of a second
        held = Counter(v for _, v, _ in _answers(url, payloads))
        assert held["2"] > held["1"]  # 0.9 of them
        time.sleep(3.5)  # the lease runs out: nobody renewed it
        assert httpx.get(split).json()["in_traffic"] is False
        assert {v for _, v, _ in _answers(url, payloads)} == {"1"}
        renewed = httpx.put(split, json={"lease_seconds": 30}, headers=token).json()
        assert renewed["in_traffic"] is True
        out = httpx.put(split, json={"active": False}, headers=token).json()
        assert out["in_traffic"] is False
        again = httpx.put(split, json={"active": True, "lease_seconds": 30}, headers=token).json()
        assert again["in_traffic"] is False  # an abort is never undone by a late renewal
        time.sleep(0.5)
        assert {v for _, v, _ in _answers(url, payloads)} == {"1"}
    with serving("rollout model", *args, env=store["env"]) as url:  # no rollout holds it
        fixed = httpx.put(f"{url}/rollout/traffic", json={"weight": 0.2})
        assert fixed.status_code == 403 and "split is fixed" in fixed.json()["message"]
