"""The wire formats the server speaks: MLflow's scoring protocol and Open Inference Protocol v2.

MLflow's (``POST /invocations``): a JSON object with ``dataframe_split``, ``dataframe_records``,
``instances`` or ``inputs`` (and optional ``params``), or a CSV body; errors as
``{"error_code": ..., "message": ...}``. Open Inference Protocol v2 (KServe, Triton, MLServer
clients): ``POST /v2/models/{name}/infer`` with typed tensors, one per input column.

Everything here turns bytes into a model's inputs, or an answer into bytes; a request that does
not fit raises :class:`BadRequest` with one line saying which field or column is wrong.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import orjson

from modelops.errors import ConfigurationError
from modelops.serving.model import Batch

if TYPE_CHECKING:
    import pandas as pd

    from modelops.serving.model import Answer, ServedModel

JSON = "application/json"
CSV = "text/csv"
V2_TYPES = {
    "double": "FP64",
    "float": "FP32",
    "long": "INT64",
    "integer": "INT32",
    "boolean": "BOOL",
    "string": "BYTES",
    "datetime": "BYTES",
    "binary": "BYTES",
}


class BadRequest(Exception):
    """A request the server refuses, with the HTTP status and MLflow-style error code."""

    def __init__(self, message: str, status: int = 400, code: str = "BAD_REQUEST") -> None:
        super().__init__(message)
        self.status = status
        self.code = code

    def body(self) -> bytes:
        """The error as MLflow's scoring server shapes it."""
        return orjson.dumps({"error_code": self.code, "message": str(self)})


def _loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"The body is not valid JSON: {exc}") from None


def _media_type(content_type: str | None) -> str:
    media = (content_type or "").split(";")[0].strip().lower()
    if media not in (JSON, CSV):
        raise BadRequest(
            f"Unsupported Content-Type {content_type!r}: send {JSON} or {CSV}.",
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        )
    return media


def _frame(value: Any, what: str, names: list[str]) -> pd.DataFrame:
    """A DataFrame from records (list of objects), columns (object of lists) or rows (list of
    lists, in the signature's column order)."""
    import pandas as pd

    if isinstance(value, dict):
        if "columns" in value and "data" in value:  # a split frame inside "inputs"
            return _split(value, what)
        lengths = {len(v) if isinstance(v, list) else -1 for v in value.values()}
        if -1 in lengths or len(lengths) > 1:
            raise BadRequest(
                f"'{what}' as an object must map each column to a list of equal "
                f"length (one value per row)."
            )
        return pd.DataFrame(value)
    if not isinstance(value, list):
        raise BadRequest(f"'{what}' must be a list of rows or an object of columns.")
    if all(isinstance(row, dict) for row in value):
        return pd.DataFrame.from_records(value)
    if all(isinstance(row, list) for row in value):
        if any(len(row) != len(names) for row in value):
            raise BadRequest(
                f"Each row of '{what}' must have {len(names)} values, in the order {names}."
            )
        return pd.DataFrame(value, columns=names)
    raise BadRequest(f"'{what}' must hold rows that are all objects or all lists.")


def _split(split: Any, what: str = "dataframe_split") -> pd.DataFrame:
    import pandas as pd

    if not isinstance(split, dict) or not isinstance(split.get("columns"), list):
        raise BadRequest(f"'{what}' must be an object with 'columns' and 'data'.")
    data = split.get("data")
    if not isinstance(data, list) or not all(isinstance(row, list) for row in data):
        raise BadRequest(f"'{what}.data' must be a list of rows (lists).")
    width = len(split["columns"])
    if any(len(row) != width for row in data):
        raise BadRequest(f"Each row of '{what}.data' must have {width} values, one per column.")
    return pd.DataFrame(data, columns=split["columns"])


def parse_invocation(body: bytes, content_type: str | None, model: ServedModel) -> tuple[Any, dict]:
    """The model's inputs and the ``params`` of a ``POST /invocations`` request.

    Raises:
        BadRequest: malformed body, unknown format, an empty batch, or inputs that do not fit
            the model's signature (the message names the column).
    """
    media = _media_type(content_type)
    params: dict[str, Any] = {}
    names = [c.name for c in model.columns]
    if media == CSV:
        import pandas as pd

        try:
            frame = pd.read_csv(io.BytesIO(body))
        except Exception as exc:
            raise BadRequest(f"The body is not readable CSV: {exc}") from None
        return _inputs(frame, model), params
    payload = _loads(body)
    if not isinstance(payload, dict):
        raise BadRequest(
            "The body must be a JSON object with one of dataframe_split, "
            "dataframe_records, instances or inputs."
        )
    params = payload.get("params") or {}
    if not isinstance(params, dict):
        raise BadRequest("'params' must be an object.")
    keys = [
        k for k in ("dataframe_split", "dataframe_records", "instances", "inputs") if k in payload
    ]
    if len(keys) != 1:
        raise BadRequest(
            "Send exactly one of dataframe_split, dataframe_records, instances "
            f"or inputs (got {keys or 'none'})."
        )
    key = keys[0]
    value = payload[key]
    if model.engine == "transformers":
        return _texts(value, key), params
    if model.numeric_fast_path and (batch := _numeric_batch(value, key, names)) is not None:
        return batch, params
    frame = _split(value) if key == "dataframe_split" else _frame(value, key, names)
    return _inputs(frame, model), params


def _numeric_batch(value: Any, key: str, names: list[str]) -> Batch | None:
    """The common request of an all-numeric model (plain numbers, every column, no more) as
    float arrays without building a DataFrame; ``None`` sends anything else down the general
    path, which converts what it can and says what is wrong with the rest."""
    if key == "dataframe_split" and isinstance(value, dict):
        columns, data = value.get("columns"), value.get("data")
        if not isinstance(columns, list) or len(columns) != len(names):
            return None
        if not isinstance(data, list) or not data:
            return None
        if any(not isinstance(row, list) or len(row) != len(columns) for row in data):
            return None
        by_name = dict(zip(columns, zip(*data, strict=True), strict=True))
    elif key in ("dataframe_records", "instances") and isinstance(value, list) and value:
        if not all(isinstance(row, dict) and len(row) == len(names) for row in value):
            return None
        try:
            by_name = {name: [row[name] for row in value] for name in names}
        except KeyError:
            return None
    else:
        return None
    return Batch.numeric(by_name, names)


def _texts(value: Any, key: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if isinstance(value, dict) and "columns" in value:
        value = [row[0] for row in value.get("data", [])]
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        value = [next(iter(v.values()), None) for v in value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise BadRequest(f"'{key}' must be a list of non-empty texts.")
    if not value:
        raise BadRequest("Empty batch: send at least one text.")
    return value


def _inputs(frame: pd.DataFrame, model: ServedModel) -> pd.DataFrame:
    from modelops.serving.scoring import conform_columns

    if frame.empty:
        raise BadRequest("Empty batch: send at least one row.")
    if not model.columns:
        return frame
    try:
        return conform_columns(frame, model.columns, refuse_extra=True)
    except ConfigurationError as exc:
        raise BadRequest(str(exc)) from None


def top_labels(answer: Answer, k: int) -> list[list[dict[str, Any]]]:
    """The ``k`` best labels with their scores, per text."""
    ranked = []
    for row in answer.probabilities:
        order = row.argsort()[::-1][:k]
        ranked.append([{"label": answer.classes[i], "score": float(row[i])} for i in order])
    return ranked


def invocation_body(answer: Answer, model: ServedModel, params: dict[str, Any]) -> bytes:
    """MLflow's answer shape, plus which version answered (and, when asked for with
    ``params: {"probabilities": true}``, the class probabilities)."""
    predictions = answer.predictions
    top_k = params.get("top_k")
    if model.engine == "transformers" and isinstance(top_k, int) and top_k > 0:
        predictions = top_labels(answer, top_k)
    out: dict[str, Any] = {
        "predictions": predictions,
        "model_version": model.version,
        "mlflow_run_id": model.run_id,
    }
    if params.get("probabilities") and answer.probabilities is not None:
        out["probabilities"] = answer.probabilities.tolist()
        out["classes"] = answer.classes
    return orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY)


# ----------------------------------------------------------------------------- OIP v2


def v2_metadata(model: ServedModel) -> dict[str, Any]:
    """``GET /v2/models/{name}``: the model, its version, its typed inputs and outputs."""
    if model.engine == "transformers":
        inputs = [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    else:
        inputs = [
            {"name": c.name, "datatype": V2_TYPES.get(c.type, "BYTES"), "shape": [-1, 1]}
            for c in model.columns
        ]
    outputs = [
        {
            "name": "predictions",
            "datatype": "BYTES" if model.engine == "transformers" else "INT64",
            "shape": [-1],
        }
    ]
    if model.is_classifier and model.engine != "transformers":
        outputs.append(
            {"name": "probabilities", "datatype": "FP64", "shape": [-1, len(model.classes)]}
        )
    return {
        "name": model.name,
        "versions": [model.version],
        "platform": f"modelops/{model.engine}",
        "inputs": inputs,
        "outputs": outputs,
        "parameters": {"mlflow_run_id": model.run_id, "alias": model.alias},
    }


def parse_v2(body: bytes, model: ServedModel) -> tuple[Any, str | None, dict[str, Any]]:
    """The model's inputs, the request id and the parameters of a v2 ``infer`` request: one
    input tensor per signature column (or one BYTES tensor of texts for a text model)."""
    import pandas as pd

    payload = _loads(body)
    if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list):
        raise BadRequest("An infer request is an object with a list of 'inputs' tensors.")
    tensors = {}
    for tensor in payload["inputs"]:
        if not isinstance(tensor, dict) or "name" not in tensor or "data" not in tensor:
            raise BadRequest("Each input tensor needs 'name', 'shape', 'datatype' and 'data'.")
        data = tensor["data"]
        if not isinstance(data, list):
            raise BadRequest(f"Input {tensor['name']!r}: 'data' must be a list.")
        tensors[str(tensor["name"])] = [
            v[0] if isinstance(v, list) and len(v) == 1 else v for v in data
        ]
    request_id = payload.get("id")
    parameters = payload.get("parameters") or {}
    if model.engine == "transformers":
        if len(tensors) != 1:
            raise BadRequest("A text model takes one BYTES input tensor of texts.")
        return _texts(next(iter(tensors.values())), "inputs"), request_id, parameters
    lengths = {len(v) for v in tensors.values()}
    if len(lengths) > 1:
        raise BadRequest("Every input tensor must have the same number of rows.")
    names = [c.name for c in model.columns]
    if model.numeric_fast_path and (batch := Batch.numeric(tensors, names)) is not None:
        return batch, request_id, parameters
    return _inputs(pd.DataFrame(tensors), model), request_id, parameters


def v2_body(answer: Answer, model: ServedModel, request_id: str | None) -> bytes:
    """A v2 infer response: ``model_name``/``model_version`` are part of the protocol."""
    rows = len(answer.predictions)
    if model.engine == "transformers":
        outputs = [
            {
                "name": "predictions",
                "datatype": "BYTES",
                "shape": [rows],
                "data": [orjson.dumps(p).decode() for p in answer.predictions],
            }
        ]
    else:
        kind = "INT64" if all(isinstance(p, int) for p in answer.predictions) else "BYTES"
        outputs = [
            {"name": "predictions", "datatype": kind, "shape": [rows], "data": answer.predictions}
        ]
        if answer.probabilities is not None:
            outputs.append(
                {
                    "name": "probabilities",
                    "datatype": "FP64",
                    "shape": list(answer.probabilities.shape),
                    "data": answer.probabilities.ravel().tolist(),
                }
            )
    return orjson.dumps(
        {
            "model_name": model.name,
            "model_version": model.version,
            "id": request_id,
            "parameters": {"mlflow_run_id": model.run_id},
            "outputs": outputs,
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )
