"""Scoring requests: the smoke request built from a version's input example, checking an
answer, and scoring a whole file in this process (batch scoring)."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from modelops.errors import ConfigurationError, DeploymentFailed

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from modelops.types import ServingTarget


def example_and_flavors(
    client: MlflowClient, name: str, version: str
) -> tuple[dict, int, list[str]]:
    """The scoring request built from the input example, its rows, and the model's flavours.

    Raises:
        ConfigurationError: the version was logged without an input example.
    """
    from modelops.model_io import read_mlmodel

    model, folder = read_mlmodel(client, name, version)
    example = model.load_input_example(str(folder))
    if example is None:
        raise ConfigurationError(
            f"Version {version} of {name!r} has no input example, so it cannot be smoke-tested. "
            f"Log models with input_example=... (the training flows do)."
        )
    flavors = sorted(model.flavors)
    if hasattr(example, "to_json"):
        # to_json writes missing values as null; json.dumps would write NaN, which is not JSON
        # and which a strict scoring server (or the API server's proxy) rejects.
        split = json.loads(example.to_json(orient="split", index=False))
        return {"dataframe_split": split}, len(example), flavors
    return {"inputs": list(example)}, len(example), flavors


def check_predictions(answer: Any, rows: int) -> list[Any]:
    """The predictions in a scoring-server answer, if there is exactly one per input row.

    Raises:
        DeploymentFailed: the answer has another shape.
    """
    predictions = answer.get("predictions") if isinstance(answer, dict) else None
    if not isinstance(predictions, list) or len(predictions) != rows:
        got = len(predictions) if isinstance(predictions, list) else type(predictions).__name__
        raise DeploymentFailed(
            f"Smoke test: expected {rows} prediction(s), got {got}: {str(answer)[:300]}"
        )
    return predictions


def score_http(url: str, payload: dict[str, Any], rows: int, timeout: float = 30) -> list[Any]:
    """POST a scoring request to ``url/invocations`` and check there is one prediction per row.

    Raises:
        DeploymentFailed: the request failed or the answer has the wrong shape.
    """
    import httpx

    try:
        response = httpx.post(f"{url}/invocations", json=payload, timeout=timeout)
    except httpx.HTTPError as exc:
        raise DeploymentFailed(f"Smoke test request to {url} failed: {exc}") from exc
    if response.status_code != 200:
        raise DeploymentFailed(
            f"Smoke test got HTTP {response.status_code} from {url}: {response.text[:500]}"
        )
    return check_predictions(response.json(), rows)


def score_file(
    client: MlflowClient, target: ServingTarget, input_uri: str, output_uri: str
) -> dict[str, Any]:
    """Score a CSV/Parquet file in this process; every output row names its model version and
    MLflow run, so a prediction can be traced back to how it was made.

    Raises:
        ConfigurationError: the file lacks input columns the model's signature needs.
    """
    from modelops.data import load_table, write_table
    from modelops.model_io import load_pyfunc

    frame = load_table(input_uri)
    started = time.monotonic()
    model = load_pyfunc(client, target.name, target.version)
    inputs = model.metadata.get_input_schema()
    columns = inputs.input_names() if inputs is not None else list(frame.columns)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ConfigurationError(f"{input_uri!r} lacks the model's input column(s) {missing}")
    features = frame[columns]
    numeric = [c for c in columns if features[c].dtype.kind in "iub"]
    if numeric:
        features = features.astype(dict.fromkeys(numeric, "float64"))
    out = frame.copy()
    out["prediction"] = list(model.predict(features))
    out["model_version"] = target.version
    out["mlflow_run_id"] = target.run_id
    seconds = time.monotonic() - started
    write_table(out, output_uri)
    return {"target": "local", "rows": len(out), "output": output_uri, "version": target.version,
            "seconds": round(seconds, 3)}  # fmt: skip
