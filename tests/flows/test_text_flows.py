"""Transformer text classifiers through the same lifecycle, on a tiny BERT built here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from support import snapshot_registry
from support_text import build_tiny_bert

from modelops.errors import ConfigurationError, DataValidationError
from modelops.settings import get_settings
from modelops.text.sample import SAMPLE_TEXTS
from modelops.tracking import get_client

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]
EMOTIONS = SAMPLE_TEXTS
FAST = {"epochs": 2, "batch_size": 16, "learning_rate": 1e-3}


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> str:
    corpus = pd.read_csv(EMOTIONS)["text"].tolist()
    return str(build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), corpus))


def _client() -> Any:
    s = get_settings()
    return get_client(s.resolved_tracking_uri, s.resolved_registry_uri)


def test_fine_tune_register_stage_promote_and_batch_score(
    mlflow_store: str, tiny_bert: str, tmp_path: Path
) -> None:
    from flows.batch_scoring import batch_scoring
    from flows.promotion import promotion
    from flows.text_training import text_training

    result = text_training(base_model=tiny_bert, fine_tune=FAST, thresholds={"macro_f1": 0.0})
    assert result.version == "1" and result.labels == sorted(pd.read_csv(EMOTIONS).label.unique())
    client = _client()
    staged = client.get_model_version_by_alias("emotion-classifier", "staging")
    runs = client.search_runs(
        [client.get_run(result.mlflow_run_id).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{result.mlflow_run_id}'",
    )
    by_name = {r.info.run_name: r for r in runs}
    evaluate = by_name["evaluate_text_model"].info.run_id
    assert {f.path for f in client.list_artifacts(evaluate)} >= {
        "confusion_matrix.png",
        "per_class.json",
    }
    assert {"accuracy", "macro_f1"} <= set(client.get_run(result.mlflow_run_id).data.metrics)
    assert staged.run_id == by_name["fine_tune_text_model"].info.run_id

    # The tabular promotion and deployment flows work unchanged for a transformers version.
    assert promotion(model_name="emotion-classifier").version == "1"
    from flows.deployment import deployment
    from modelops.cli import main as cli

    try:
        served = deployment(
            model_name="emotion-classifier", target="local", workers=1, timeout_seconds=180
        )
        import httpx

        answer = httpx.post(
            f"{served.url}/invocations",
            timeout=60,
            json={"inputs": ["thank you so much", "this is unacceptable"]},
        ).json()
        assert len(answer["predictions"]) == 2
        assert {p["label"] for p in answer["predictions"]} <= set(result.labels)
        assert answer["model_version"] == "1" and answer["mlflow_run_id"] == staged.run_id
        ranked = httpx.post(
            f"{served.url}/invocations",
            timeout=60,
            json={"inputs": ["thank you so much"], "params": {"top_k": 3}},
        ).json()
        (labels,) = ranked["predictions"]
        assert len(labels) == 3 and labels[0]["score"] >= labels[1]["score"] >= labels[2]["score"]
        v2 = httpx.post(
            f"{served.url}/v2/models/emotion-classifier/infer",
            timeout=60,
            json={
                "inputs": [
                    {"name": "text", "shape": [1], "datatype": "BYTES", "data": ["I am furious"]}
                ]
            },
        ).json()
        assert v2["model_version"] == "1" and v2["outputs"][0]["shape"] == [1]
    finally:
        cli(["stop", "emotion-classifier"])

    out = tmp_path / "scored.csv"
    pd.read_csv(EMOTIONS).head(40).to_csv(tmp_path / "in.csv", index=False)
    scored_info = batch_scoring(
        input_uri=str(tmp_path / "in.csv"),
        output_uri=str(out),
        model_name="emotion-classifier",
        batch_size=16,
    )
    scored = pd.read_csv(out)
    assert scored_info["rows"] == len(scored) == 40
    assert set(scored["label"]) <= set(result.labels) and scored["score"].between(0, 1).all()
    assert set(scored["model_version"].astype(str)) == {"1"}
    assert set(scored["mlflow_run_id"]) == {staged.run_id}
    scoring_run = client.search_runs(
        [client.get_run(result.mlflow_run_id).info.experiment_id],
        filter_string="tags.`modelops.flow` = 'batch-scoring'",
    )[0]
    history = client.get_metric_history(scoring_run.info.run_id, "batch.latency_ms_per_item")
    assert [m.step for m in history] == [0, 1, 2]  # 40 texts in batches of 16
    candidates = client.get_metric_history(scoring_run.info.run_id, "batch.candidate_labels")
    assert [m.value for m in candidates] == [16 * 6, 16 * 6, 8 * 6]
    assert scoring_run.data.tags["inference.engine_id"].startswith("transformers-")
    assert "inference.environment" in scoring_run.data.tags


def _write(tmp: Path, df: pd.DataFrame) -> str:
    path = tmp / "texts.csv"
    df.to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize(
    ("make", "kwargs", "error", "fragment"),
    [
        (
            lambda df: df.assign(text=[""] * 3 + df.text.tolist()[3:]),
            {},
            DataValidationError,
            "3 empty or missing text(s)",
        ),
        (lambda df: df, {"labels": ["joy", "anger"]}, DataValidationError, "unknown label(s)"),
        (lambda df: df.assign(label="joy"), {}, DataValidationError, "at least 2 classes, found 1"),
        (
            lambda df: df,
            {"base_model": "NOT_A_MODEL"},
            ConfigurationError,
            "is not a model directory",
        ),
        (
            lambda df: df,
            {"base_model": "acme/no-such-model", "revision": "v9"},
            ConfigurationError,
            "Cannot load revision 'v9' of 'acme/no-such-model'",
        ),
    ],
    ids=["empty texts", "unknown labels", "single class", "not a model dir", "unknown revision"],
)
def test_bad_text_input_registers_nothing(
    mlflow_store: str,
    tiny_bert: str,
    tmp_path: Path,
    make: Any,
    kwargs: dict,
    error: type[Exception],
    fragment: str,
) -> None:
    from flows.text_training import text_training

    data = _write(tmp_path, make(pd.read_csv(EMOTIONS)))
    if kwargs.get("base_model") == "NOT_A_MODEL":
        (tmp_path / "empty-dir").mkdir()
        kwargs = {**kwargs, "base_model": str(tmp_path / "empty-dir")}
    state = text_training(
        data_path=data,
        fine_tune=FAST,
        thresholds={"macro_f1": 0.0},
        **{"base_model": tiny_bert, **kwargs},
        return_state=True,
    )
    with pytest.raises(error) as info:
        state.result()
    assert fragment in str(info.value)
    assert snapshot_registry() == {}


def test_register_pretrained_snapshot_from_a_pypi_package(mlflow_store: str) -> None:
    from flows.register_pretrained import register_pretrained

    result = register_pretrained(description="sentence embeddings", tags={"team": "search"})
    assert result.version == "1"
    assert result.metadata["resolved_revision"].startswith("local-sha256:")
    client = _client()
    version = client.get_model_version("all-minilm-l6-v2", "1")
    path = client.download_artifacts(version.run_id, "model-metadata.json")
    metadata = json.loads(Path(path).read_text())
    assert metadata["task"] == "feature-extraction" and metadata["tags"] == {"team": "search"}
    assert metadata["resolved_revision"] == result.metadata["resolved_revision"]

    state = register_pretrained(revision="main", return_state=True)
    with pytest.raises(ConfigurationError, match="only applies to hub ids"):
        state.result()
    assert len(client.search_model_versions("name = 'all-minilm-l6-v2'")) == 1


def test_register_pretrained_from_the_command_line_tags_and_stages_the_version(
    mlflow_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from modelops.cli import main
    from modelops.text.training import default_base_model

    before = snapshot_registry()
    assert (
        main(
            [
                "register-pretrained",
                "sentence-encoder",
                default_base_model(),
                "--tag",
                "stage=production",
            ]
        )
        == 2
    )
    assert "production is reached through the promotion flow" in capsys.readouterr().err
    assert snapshot_registry() == before

    code = main(
        [
            "register-pretrained",
            "sentence-encoder",
            default_base_model(),
            "--description",
            "sentence embeddings",
            "--tag",
            "team=search",
            "--tag",
            "stage=staging",
        ]
    )
    assert code == 0, capsys.readouterr().err
    client = _client()
    version = client.get_model_version("sentence-encoder", "1")
    assert version.tags["team"] == "search" and version.tags["stage"] == "staging"
    assert str(client.get_model_version_by_alias("sentence-encoder", "staging").version) == "1"
    assert client.get_registered_model("sentence-encoder").description == "sentence embeddings"
    assert '"model_name": "sentence-encoder"' in capsys.readouterr().out


def test_a_text_classifier_is_monitored_by_text_length_and_predicted_labels(
    mlflow_store: str, tiny_bert: str, tmp_path: Path
) -> None:
    from flows.monitoring import monitoring
    from flows.text_training import text_training
    from modelops import ModelStage, promote_model

    result = text_training(base_model=tiny_bert, fine_tune=FAST, thresholds={"macro_f1": 0.0})
    promote_model("emotion-classifier", result.version, stage=ModelStage.PRODUCTION)
    texts = pd.read_csv(EMOTIONS)
    same = tmp_path / "same.csv"
    texts.sample(frac=1.0, random_state=1).to_csv(same, index=False)
    ok = monitoring(
        model_name="emotion-classifier",
        data_path=str(same),
        min_rows=50,
        labelled_path=str(same),
        metric_drop_max={"accuracy": 0.5},
    )
    assert ok["degraded"] is False, ok["breaches"]
    assert set(ok["performance"]) == {"accuracy", "macro_f1"}

    long = tmp_path / "long.csv"
    texts.assign(text=texts["text"] + " " + "and then it went on and on " * 12).to_csv(
        long, index=False
    )
    drifted = monitoring(model_name="emotion-classifier", data_path=str(long), min_rows=50)
    assert drifted["degraded"] is True
    assert any("'text_length'" in b for b in drifted["breaches"]), drifted["breaches"]
    # Texts longer than the model's positions are truncated, in batch scoring too.
    from flows.batch_scoring import batch_scoring

    scored = batch_scoring(
        input_uri=str(long),
        output_uri=str(tmp_path / "long-scored.csv"),
        model_name="emotion-classifier",
        batch_size=16,
    )
    assert scored["rows"] == len(texts)

    foreign = tmp_path / "foreign.csv"
    texts.assign(label="sarcasm").to_csv(foreign, index=False)
    with pytest.raises(ConfigurationError, match="are not the model's: sarcasm"):
        monitoring(
            model_name="emotion-classifier",
            data_path=str(same),
            min_rows=50,
            labelled_path=str(foreign),
        )
