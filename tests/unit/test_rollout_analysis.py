"""The live analysis of a rollout step (modelops.rollouts.analysis) on evidence shaped as a
two-version server keeps it: a worse candidate fails, an equal one passes, thin evidence is
inconclusive, and operational alarms fail a candidate without any label."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from modelops.errors import ConfigurationError
from modelops.rollouts.analysis import FAIL, INCONCLUSIVE, PASS, Criteria, analyse
from modelops.serving.evidence import COLUMNS


def evidence(
    n: int,
    mode: str = "shadow",
    candidate_noise: float = 0.0,
    useless: bool = False,
    labelled: float = 1.0,
    candidate_errors: float = 0.0,
    candidate_slowdown: float = 1.0,
    weight: float = 0.5,
    shift: float = 0.0,
    seed: int = 0,
) -> dict[str, Any]:
    """What ``GET /rollout/evidence`` returns for ``n`` one-row requests: the truth is a
    coin whose odds a score predicts; the stable version sees the score, the candidate sees it
    with ``noise`` (or not at all: ``useless``), moved by ``shift``."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    truth = (rng.random(n) < 1 / (1 + np.exp(-3 * signal))).astype(int)
    stable = 1 / (1 + np.exp(-3 * signal))
    seen = rng.normal(size=n) if useless else signal + candidate_noise * rng.normal(size=n)
    seen = seen + shift
    candidate = 1 / (1 + np.exp(-3 * seen))
    out: dict[str, list[Any]] = {k: [] for k in COLUMNS}
    for i in range(n):
        rid = f"r{i}"
        label = [int(truth[i])] if rng.random() < labelled else None
        to_candidate = rng.random() < weight
        for version, scores, answered in (
            ("1", stable, mode == "shadow" or not to_candidate),
            ("2", candidate, mode == "shadow" or to_candidate),
        ):
            if mode == "canary" and not answered:
                continue
            failed = version == "2" and rng.random() < candidate_errors
            slow = candidate_slowdown if version == "2" else 1.0
            out["request_id"].append(rid)
            out["version"].append(version)
            out["answered"].append(int(answered and (mode == "canary" or version == "1")))
            out["status"].append(500 if failed else 200)
            out["seconds"].append(0.001 * slow * (1 + rng.random()))
            out["at"].append(1000.0 + i)
            out["predictions"].append(None if failed else [int(scores[i] >= 0.5)])
            out["scores"].append(None if failed else [float(scores[i])])
            out["labels"].append(label)
    return {"stable": "1", "candidate": "2", "mode": mode, "classes": [0, 1], **out}


@pytest.mark.parametrize("mode", ["shadow", "canary"])
def test_a_candidate_worse_on_live_labels_fails(mode: str) -> None:
    result = analyse(evidence(2000, mode, useless=True), Criteria(max_prediction_psi=10))
    assert result.verdict == FAIL
    assert "worse than the stable" in result.reasons[0]
    assert result.candidate.metric < 0.6 < 0.8 < result.stable.metric
    low, high = result.difference_interval
    assert low < result.difference < high < -0.02


@pytest.mark.parametrize("mode", ["shadow", "canary"])
def test_an_equal_candidate_passes(mode: str) -> None:
    result = analyse(evidence(4000, mode, candidate_noise=0.01), Criteria())
    assert result.verdict == PASS, result.reasons
    assert result.candidate.labels > 1000 and result.stable.labels > 1000
    assert result.candidate.prediction_psi < (0.01 if mode == "shadow" else 0.05)  # sampling
    if mode == "shadow":
        assert result.candidate.agreement > 0.98
        assert result.stable.requests == result.candidate.requests == 4000
    else:
        assert result.candidate.agreement is None
        assert abs(result.candidate.requests - 2000) < 200


def test_thin_evidence_is_inconclusive_and_says_what_is_missing() -> None:
    few_labels = analyse(evidence(1000, labelled=0.05), Criteria(min_labels=200))
    assert few_labels.verdict == INCONCLUSIVE
    assert "label(s) per version, 200 needed" in few_labels.reasons[0]
    few_requests = analyse(evidence(100), Criteria(min_requests=200))
    assert few_requests.verdict == INCONCLUSIVE and "100 request(s)" in few_requests.reasons[0]


def test_operational_alarms_fail_a_candidate_without_any_label() -> None:
    errors = analyse(evidence(2000, candidate_errors=0.05, labelled=0), Criteria(metric=None))
    assert errors.verdict == FAIL and "error rate" in errors.reasons[0]
    assert 0.03 < errors.candidate.error_rate < 0.07 and errors.stable.error_rate == 0
    slow = analyse(evidence(2000, candidate_slowdown=10, labelled=0), Criteria(metric=None))
    assert slow.verdict == FAIL and "p99" in slow.reasons[0]
    moved = analyse(evidence(2000, shift=1.0, labelled=0), Criteria(metric=None))
    assert moved.verdict == FAIL and "PSI" in moved.reasons[0]
    # A candidate that ignores its input can keep the stable version's distribution (PSI ~0):
    # in shadow, the agreement on the same requests gives it away.
    blind = analyse(evidence(2000, useless=True, labelled=0), Criteria(None, min_agreement=0.8))
    assert blind.candidate.prediction_psi < 0.05 and blind.candidate.agreement < 0.7
    assert blind.verdict == FAIL and "agreement" in blind.reasons[0]
    fine = analyse(evidence(2000, labelled=0), Criteria(metric=None))
    assert fine.verdict == PASS and fine.reasons == ["every criterion is met"]


@pytest.mark.parametrize("metric", ["accuracy", "f1", "log_loss"])
def test_other_live_metrics_judge_alike(metric: str) -> None:
    worse = analyse(evidence(3000, useless=True), Criteria(metric=metric, max_prediction_psi=10))
    same = analyse(evidence(3000, candidate_noise=0.01), Criteria(metric=metric))
    assert worse.verdict == FAIL and same.verdict == PASS, (worse.reasons, same.reasons)
    assert same.stable.interval[0] <= same.stable.metric <= same.stable.interval[1]


def test_the_comparison_table_has_a_row_per_version() -> None:
    rows = analyse(evidence(500), Criteria()).table()
    assert [r["version"] for r in rows] == ["v1 (stable)", "v2 (candidate)"]
    assert rows[1]["verdict"] == PASS and rows[0]["requests"] == 500
    assert {"p50 ms", "p99 ms", "prediction PSI", "agreement", "labels", "live roc_auc"} <= set(
        rows[0]
    )


@pytest.mark.parametrize(
    ("criteria", "words"),
    [
        (Criteria(metric="auc"), "Unknown live metric"),
        (Criteria(confidence=1.5), "confidence"),
        (Criteria(margin=-1), "cannot be negative"),
        (Criteria(max_p99_ratio=0.5), "max_p99_ratio"),
    ],
)
def test_bad_criteria_are_refused(criteria: Criteria, words: str) -> None:
    with pytest.raises(ConfigurationError, match=words):
        analyse(evidence(10), criteria)


def test_one_version_evidence_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="not a two-version server"):
        analyse({**evidence(10), "candidate": None}, Criteria())


def test_a_shadow_step_before_the_candidate_scored_anything_is_inconclusive() -> None:
    # The first poll of a short step: the stable version answered, the candidate (scoring after
    # the answer went) has nothing kept yet — no pairs, so no agreement, and no verdict.
    kept = evidence(300, "shadow")
    stable_only = [i for i, v in enumerate(kept["version"]) if v == "1"]
    for key in COLUMNS:
        kept[key] = [kept[key][i] for i in stable_only]
    result = analyse(kept, Criteria(min_requests=100))
    assert result.verdict == INCONCLUSIVE
    assert result.candidate.requests == 0 and result.candidate.agreement is None
    assert result.reasons[0] == "v2 has 0 request(s), 100 needed"


def test_a_canary_prediction_shift_fails_only_when_chance_cannot_explain_it() -> None:
    """The CI failure this guards against: an equal candidate failed a canary step on 'PSI
    0.346 > 0.25' with 100 requests on its side; the two sides answer different requests."""
    criteria = Criteria(metric=None, min_requests=20)
    small = [analyse(evidence(250, "canary", weight=0.2, seed=s), criteria) for s in range(40)]
    by_chance = [a for a in small if a.candidate.prediction_psi > criteria.max_prediction_psi]
    assert by_chance, "no sample this small moved the PSI over the bound: the test shows nothing"
    assert all(a.verdict == PASS for a in by_chance)
    assert all(a.candidate.prediction_shift_p >= 0.01 for a in by_chance)
    # A real shift on as few requests still fails, and says how unlikely chance is.
    moved = analyse(evidence(250, "canary", weight=0.2, shift=1.5), criteria)
    assert moved.verdict == FAIL and "PSI" in moved.reasons[0] and "p = " in moved.reasons[0]


def test_the_looks_at_one_step_share_the_shift_tests_chance_of_a_false_alarm() -> None:
    """The CI failure this guards against: a good candidate failed a canary step on 'PSI
    0.406 > 0.25 (p = 0.0095)'; its step was judged every half second, each look with the
    whole 1 % chance of a false alarm."""
    once = Criteria(metric=None, min_requests=50)
    often = Criteria(metric=None, min_requests=50, looks=240)

    def alarmed(stream: dict[str, Any], criteria: Criteria) -> bool:
        """Whether a look at the step as its evidence grew (every 20 answers) failed it."""
        looks = range(100, len(stream["request_id"]) + 1, 20)
        return any(
            analyse({**stream, **{k: stream[k][:cut] for k in COLUMNS}}, criteria).verdict == FAIL
            for cut in looks
        )

    # Candidates as good as the stable version (a little noise of their own, as a retrained
    # model has), each judged ~35 times as its step went on.
    streams = [evidence(400, "canary", candidate_noise=0.05, seed=s) for s in range(30)]
    false_alarms = [s for s in streams if alarmed(s, once)]
    assert false_alarms, "no false alarm at one look's alpha: the test shows nothing"
    assert not any(alarmed(s, often) for s in false_alarms)
    moved = analyse(evidence(250, "canary", weight=0.2, shift=1.5), often)
    assert moved.verdict == FAIL and "< 4.2e-05" in moved.reasons[0]
    with pytest.raises(ConfigurationError, match="looks must be at least 1"):
        Criteria(looks=0).check()
