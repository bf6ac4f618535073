"""Manifest rendering, on its own: no cluster, no MLflow, just templates in and objects out."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from modelops.errors import ConfigurationError
from modelops.k8s.manifests import (
    HASH_ANNOTATION,
    ServingSpec,
    removable_objects,
    render_batch_job,
    render_rollout_secret,
    render_serving,
    rollout_secret_name,
    spec_hash,
    templates_root,
)
from modelops.serving.traffic import Rollout

ROOT = Path(__file__).resolve().parents[2]


def _spec(**overrides: object) -> ServingSpec:
    values: dict = {
        "model_name": "Lead Scoring/EU (v2)!",
        "version": "3",
        "run_id": "a" * 32,
        "namespace": "ml",
        "image": "registry.local/lead:1",
        "tracking_uri": "http://mlflow:5000",
    }
    return ServingSpec(**{**values, **overrides})


def test_rendered_manifests_pass_the_official_schemas() -> None:
    spec = _spec()
    for manifest in (
        *render_serving(spec),
        render_batch_job(spec, "s3://b/in.csv", "s3://b/out.csv", "run1"),
    ):
        kubernetes_validate.validate(manifest, "1.30", strict=True)
    rbac = list(yaml.safe_load_all((ROOT / "deployments/rbac/rbac.yaml").read_text()))
    assert {d["kind"] for d in rbac} == {"ServiceAccount", "Role", "RoleBinding"}
    for manifest in rbac:
        kubernetes_validate.validate(manifest, "1.30", strict=True)


def test_serving_objects_name_the_model_and_version() -> None:
    deployment, service = render_serving(_spec())
    assert deployment["metadata"]["name"] == service["metadata"]["name"]
    assert deployment["metadata"]["name"].endswith("-serving")
    assert deployment["metadata"]["annotations"]["modelops.io/model-name"] == (
        "Lead Scoring/EU (v2)!"
    )
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["modelops", "serve"]
    assert container["args"][:3] == ["Lead Scoring/EU (v2)!", "--version", "3"]
    mlflow_served, _ = render_serving(_spec(server="mlflow"))  # for images without the project
    mlflow_container = mlflow_served["spec"]["template"]["spec"]["containers"][0]
    assert mlflow_container["command"] == ["mlflow", "models", "serve"]
    assert mlflow_container["args"][:2] == ["--model-uri", "models:/Lead Scoring/EU (v2)!/3"]
    kubernetes_validate.validate(mlflow_served, "1.30", strict=True)
    assert deployment["metadata"]["labels"]["modelops.io/version"] == "3"
    assert deployment["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    # What teardown deletes is what deployment created.
    names = {
        (m["kind"], m["metadata"]["name"]) for m in removable_objects(_spec().model_name, "ml")
    }
    assert names == {
        ("Deployment", deployment["metadata"]["name"]),
        ("Service", service["metadata"]["name"]),
        ("Secret", rollout_secret_name(_spec().model_name)),  # a rollout's token, if one runs
    }


def test_a_rollout_puts_the_candidate_in_every_pod_and_its_token_only_in_a_secret() -> None:
    token = "a-rollout-token-nobody-may-read"
    rollout = Rollout("4", "canary", 0.1, token, 45.0, sticky_header="X-User-Id")
    spec = _spec().model_copy(update={"rollout": rollout})
    deployment, service = render_serving(spec)
    kubernetes_validate.validate(deployment, "1.30", strict=True)
    kubernetes_validate.validate(service, "1.30", strict=True)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][-8:] == [
        "--candidate",
        "4",
        "--mode",
        "canary",
        "--weight",
        "0.1",
        "--sticky-header",
        "X-User-Id",
    ]
    env = {e["name"]: e for e in container["env"]}
    assert env["MODELOPS_ROLLOUT_LEASE_SECONDS"]["value"] == "45.0"
    assert env["MODELOPS_ROLLOUT_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": rollout_secret_name(spec.model_name),
        "key": "token",
    }
    assert token not in json.dumps([deployment, service])
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["modelops.io/candidate"] == "4"
    assert labels["modelops.io/rollout"] == rollout.rollout_id != token
    # The selector stays the version's (selectors are immutable): the same Deployment, rolled.
    assert deployment["spec"]["selector"] == render_serving(_spec())[0]["spec"]["selector"]
    secret = render_rollout_secret(spec)
    kubernetes_validate.validate(secret, "1.30", strict=True)
    assert base64.b64decode(secret["data"]["token"]).decode() == token
    # Another rollout (another token) restarts the pods: they read the token as they start.
    again = spec.model_copy(
        update={"rollout": Rollout("4", "canary", 0.1, "other", 45.0, None, "X-User-Id")}
    )
    assert spec_hash(render_serving(again)[0]) != spec_hash(deployment)


def test_the_hash_changes_with_the_spec_and_not_with_the_flow_run() -> None:
    first, _ = render_serving(_spec())
    same, _ = render_serving(_spec(flow_run_id="another-run"))
    other, _ = render_serving(_spec(version="4"))
    annotations = [m["metadata"]["annotations"][HASH_ANNOTATION] for m in (first, same, other)]
    assert annotations[0] == annotations[1] != annotations[2]


def test_templates_come_from_the_package_unless_a_folder_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODELOPS_TEMPLATES_DIR", raising=False)
    assert (templates_root() / "serving" / "deployment.yaml").is_file()
    custom = tmp_path / "templates"
    shutil.copytree(templates_root() / "serving", custom / "serving")
    deployment = yaml.safe_load((custom / "serving" / "deployment.yaml").read_text())
    deployment["metadata"].setdefault("labels", {})["team"] = "fraud"
    (custom / "serving" / "deployment.yaml").write_text(yaml.safe_dump(deployment))
    monkeypatch.setenv("MODELOPS_TEMPLATES_DIR", str(custom))
    assert templates_root() == custom
    rendered, _ = render_serving(_spec())
    assert rendered["metadata"]["labels"]["team"] == "fraud"
    monkeypatch.setenv("MODELOPS_TEMPLATES_DIR", str(tmp_path / "missing"))
    with pytest.raises(ConfigurationError, match="set MODELOPS_TEMPLATES_DIR"):
        render_serving(_spec())


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("namespace", "Not_Valid", "Invalid namespace"),
        ("image", "bad image!", "container image"),
        ("version", "latest", "registered version number"),
    ],
)
def test_invalid_values_never_reach_a_manifest(field: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _spec(**{field: value})


def test_names_are_unique_per_model_and_every_name_is_deployable() -> None:
    from modelops.naming import job_name, local_server_key, serving_name

    names = [
        "churn model",
        "churn-model",
        "Churn-Model",
        "東京",
        "東京 2",
        "a" * 200,
        "a" * 200 + "b",
        "o'brien",
        "churn.model",
    ]
    serving = [serving_name(n) for n in names]
    assert len(set(serving)) == len(names)
    assert len({local_server_key(n) for n in names}) == len(names)
    assert serving_name("churn-model") == "churn-model-serving"  # valid names are kept as is
    for name in names:
        for object_name in (serving_name(name), job_name(name, "nightly run #3")):
            assert len(object_name) <= 63
            kubernetes_validate.validate(
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": object_name, "namespace": "ml"},
                    "spec": {"ports": [{"port": 80}]},
                },
                "1.30",
                strict=True,
            )
    for name in ("東京", "churn model"):
        deployment, _ = render_serving(_spec(model_name=name))
        kubernetes_validate.validate(deployment, "1.30", strict=True)
        assert deployment["metadata"]["annotations"]["modelops.io/model-name"] == name


def test_credentials_never_go_into_a_manifest() -> None:
    from modelops.settings import Settings
    from modelops.uris import redact

    with pytest.raises(ValueError, match="holds credentials"):
        _spec(tracking_uri="https://bob:pw@mlflow:5000")
    deployment, _ = render_serving(_spec(credentials_secret="mlflow-creds"))
    kubernetes_validate.validate(deployment, "1.30", strict=True)
    assert redact("https://bob:pw@mlflow:5000/x") == "https://***@mlflow:5000/x"
    assert redact("sqlite:////a/b.db") == "sqlite:////a/b.db"
    settings = Settings(MLFLOW_TRACKING_URI="https://bob:pw@mlflow:5000")  # type: ignore[call-arg]
    assert settings.ui_base_url == "https://mlflow:5000"
    assert "pw" not in settings.shown_tracking_uri
