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
from dataclasses import dataclass
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

    def v2_body(self) -> bytes:
        """The error as Open Inference Protocol v2 shapes it (what its clients decode)."""
        return orjson.dumps({"error": str(self)})


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
        return check_values(batch, model), params
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
        conformed = conform_columns(frame, model.columns, refuse_extra=True)
    except ConfigurationError as exc:
        raise BadRequest(str(exc)) from None
    return check_values(conformed, model)


# The largest magnitude both engines score alike: ONNX takes float32, and a double beyond it
# becomes infinity there while scikit-learn still answers.
FLOAT32_MAX = 3.4028234663852886e38


def check_values(inputs: Any, model: ServedModel) -> Any:
    """``inputs`` (a conformed DataFrame or a numeric :class:`Batch`) if every value is one the
    model can score, the same check whichever engine answers.

    Numbers must be finite and within float32's range (infinity, ``1e309`` and ``inf`` in CSV
    never score); a missing value (null, NaN, an empty CSV cell) only in a column the model was
    seen to take missing values in (``model.missing_ok``, probed once when the copy was
    prepared; ``None``: not known, so allowed). One vectorised comparison per column: NaN
    fails ``<=`` too, so a clean column costs one pass and only a flagged one is looked at.

    Raises:
        BadRequest: the first bad value, naming its column and row (counted from 1).
    """
    import numpy as np

    matrix = getattr(inputs, "matrix", None)
    # A Batch (numbers only) whose magnitudes sum within range has every value in range: one
    # reduction, ~1 us for a one-row request. NaN or infinity make the sum fail the test, and
    # so does a sum of many large but fine values: those take the exact look below.
    if matrix is not None and np.add.reduce(np.abs(matrix), axis=None) <= FLOAT32_MAX:
        return inputs
    missing_ok = getattr(model, "missing_ok", None)
    for column in model.columns:  # both kinds of inputs hold every signature column
        values = inputs[column.name]
        if column.type in ("double", "float"):
            array = np.asarray(values, dtype=np.float64)
            fine = np.abs(array) <= FLOAT32_MAX
            if fine.all():
                continue
            nan = np.isnan(array)
            bad = ~fine & ~nan if missing_ok is None or column.name in missing_ok else ~fine
            if not bad.any():
                continue
            row = int(np.argmax(bad))
            if nan[row]:
                raise BadRequest(_missing(column.name, row))
            raise BadRequest(
                f"Column {column.name!r}, row {row + 1}: {float(array[row])!r} is not a number this "
                f"model can score; send a finite number within ±{FLOAT32_MAX:.1e}."
            )
        elif missing_ok is not None and column.name not in missing_ok:
            # A DataFrame's column (a Batch holds numbers only); a whole-number column never
            # has a gap here: conform_columns refuses it.
            gaps = values.isna().to_numpy()
            if gaps.any():
                raise BadRequest(_missing(column.name, int(np.argmax(gaps))))
    return inputs


def _missing(name: str, row: int) -> str:
    return (
        f"Column {name!r}, row {row + 1}: a missing value (null, NaN or an empty CSV cell), "
        f"which this model cannot take; send a value."
    )


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

# The binary tensor data extension (what tritonclient and the KServe SDK send by default): the
# JSON header's length in a request or response header, then each tensor's raw little-endian
# elements in order, a BYTES element as a 4-byte little-endian length and its bytes.
HEADER_LENGTH = "Inference-Header-Content-Length"
_NUMPY = {
    "BOOL": "|b1",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}


@dataclass
class V2Request:
    """A parsed ``infer`` request: the model's inputs, the request's id and parameters, and
    which outputs it wants, each in binary or not (``None``: every output, as JSON unless
    ``binary_data_output``)."""

    inputs: Any
    id: str | None
    parameters: dict[str, Any]
    outputs: dict[str, bool] | None = None
    binary_default: bool = False


def prediction_datatype(model: ServedModel) -> str:
    """The v2 datatype of ``predictions``, from what the model is, never from one answer's
    values: metadata and every answer say the same, whichever engine answers."""
    if model.engine == "transformers":
        return "BYTES"
    classes = model.classes
    if classes:
        if all(isinstance(c, bool) for c in classes):
            return "BOOL"
        if all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
            return "INT64"
        if all(isinstance(c, int | float) and not isinstance(c, bool) for c in classes):
            return "FP64"
        return "BYTES"
    return "FP64" if model.engine in ("onnx", "sklearn") else "BYTES"  # a regressor's numbers


def _output_specs(model: ServedModel) -> list[dict[str, Any]]:
    outputs = [{"name": "predictions", "datatype": prediction_datatype(model), "shape": [-1]}]
    if model.is_classifier and model.engine != "transformers":
        outputs.append(
            {"name": "probabilities", "datatype": "FP64", "shape": [-1, len(model.classes)]}
        )
    return outputs


def v2_metadata(model: ServedModel) -> dict[str, Any]:
    """``GET /v2/models/{name}``: the model, its version, its typed inputs and outputs."""
    if model.engine == "transformers":
        inputs = [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    else:
        inputs = [
            {"name": c.name, "datatype": V2_TYPES.get(c.type, "BYTES"), "shape": [-1, 1]}
            for c in model.columns
        ]
    return {
        "name": model.name,
        "versions": [model.version],
        "platform": f"modelops/{model.engine}",
        "inputs": inputs,
        "outputs": _output_specs(model),
        "parameters": {"mlflow_run_id": model.run_id, "alias": model.alias},
    }


def _split_binary(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    if not header_length.strip().isdigit():
        raise BadRequest(f"{HEADER_LENGTH} must be a number of bytes, not {header_length!r}.")
    size = int(header_length)
    if size > len(body):
        raise BadRequest(f"{HEADER_LENGTH} is {size} but the body has only {len(body)} bytes.")
    return body[:size], body[size:]


def _from_binary(raw: bytes, datatype: Any, name: str) -> Any:
    """One tensor's elements from its raw bytes, as a flat array (BYTES: a list of texts)."""
    import numpy as np

    if datatype == "BYTES":
        texts, at = [], 0
        while at < len(raw):
            if at + 4 > len(raw):
                raise BadRequest(f"Input {name!r}: a BYTES element's 4-byte length is cut off.")
            size = int.from_bytes(raw[at : at + 4], "little")
            if at + 4 + size > len(raw):
                raise BadRequest(f"Input {name!r}: a BYTES element runs past its data.")
            try:
                texts.append(raw[at + 4 : at + 4 + size].decode())
            except UnicodeDecodeError:
                raise BadRequest(f"Input {name!r}: a BYTES element is not UTF-8 text.") from None
            at += 4 + size
        return texts
    dtype = _NUMPY.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise BadRequest(f"Input {name!r}: unknown datatype {datatype!r} for binary data.")
    if len(raw) % np.dtype(dtype).itemsize:
        raise BadRequest(
            f"Input {name!r}: {len(raw)} bytes is not a whole number of {datatype} elements."
        )
    return np.frombuffer(raw, dtype=dtype)


def _elements(tensor: dict[str, Any], name: str, binary: bytes, at: int) -> tuple[Any, int]:
    """A tensor's elements, flat, and where the next binary tensor starts."""
    parameters = tensor.get("parameters") or {}
    size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
    if size is None:
        data = tensor.get("data")
        if not isinstance(data, list):
            raise BadRequest(
                f"Input {name!r}: 'data' must be a list (or the tensor's binary_data_size given)."
            )
        return [v[0] if isinstance(v, list) and len(v) == 1 else v for v in data], at
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise BadRequest(f"Input {name!r}: binary_data_size must be a number of bytes.")
    if at + size > len(binary):
        raise BadRequest(
            f"Input {name!r}: binary_data_size {size} runs past the {len(binary) - at} bytes "
            f"of binary data left."
        )
    return _from_binary(binary[at : at + size], tensor.get("datatype"), name), at + size


def _wanted_outputs(payload: dict[str, Any], model: ServedModel) -> tuple[dict | None, bool]:
    parameters = payload.get("parameters") or {}
    default = bool(parameters.get("binary_data_output", False))
    requested = payload.get("outputs")
    if requested is None:
        return None, default
    if not isinstance(requested, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in requested
    ):
        raise BadRequest("'outputs' must be a list of objects, each with a 'name'.")
    known = [o["name"] for o in _output_specs(model)]
    wanted = {}
    for output in requested:
        if output["name"] not in known:
            raise BadRequest(f"No output {output['name']!r}: this model has {known}.")
        flags = output.get("parameters") or {}
        binary = flags.get("binary_data", default) if isinstance(flags, dict) else default
        wanted[output["name"]] = bool(binary)
    return wanted, default


def parse_v2(body: bytes, model: ServedModel, header_length: str | None = None) -> V2Request:
    """A v2 ``infer`` request: one input tensor per signature column (or one BYTES tensor of
    texts for a text model), in JSON or, with ``Inference-Header-Content-Length``, binary.

    Raises:
        BadRequest: the request does not fit the protocol or the model's signature.
    """
    import pandas as pd

    header, binary = _split_binary(body, header_length)
    payload = _loads(header)
    if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list):
        raise BadRequest("An infer request is an object with a list of 'inputs' tensors.")
    if not isinstance(payload.get("parameters") or {}, dict):
        raise BadRequest("'parameters' must be an object.")
    tensors, at = {}, 0
    for tensor in payload["inputs"]:
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise BadRequest("Each input tensor needs 'name', 'shape', 'datatype' and 'data'.")
        name = tensor["name"]
        if name in tensors:
            raise BadRequest(f"Input {name!r} appears more than once; send each input once.")
        tensors[name], at = _elements(tensor, name, binary, at)
    if at != len(binary):
        raise BadRequest(f"{len(binary) - at} bytes of binary data belong to no input tensor.")
    wanted, default = _wanted_outputs(payload, model)
    request_id = payload.get("id")
    request_id = None if request_id is None else str(request_id)
    parameters = payload.get("parameters") or {}
    if model.engine == "transformers":
        if len(tensors) != 1:
            raise BadRequest("A text model takes one BYTES input tensor of texts.")
        texts = _texts(list(next(iter(tensors.values()))), "inputs")
        return V2Request(texts, request_id, parameters, wanted, default)
    lengths = {len(v) for v in tensors.values()}
    if len(lengths) > 1:
        raise BadRequest("Every input tensor must have the same number of rows.")
    names = [c.name for c in model.columns]
    if model.numeric_fast_path and (batch := Batch.numeric(tensors, names)) is not None:
        return V2Request(check_values(batch, model), request_id, parameters, wanted, default)
    inputs = _inputs(pd.DataFrame({k: list(v) for k, v in tensors.items()}), model)
    return V2Request(inputs, request_id, parameters, wanted, default)


def _typed(values: list[Any], datatype: str) -> list[Any]:
    if datatype == "INT64":
        return [int(v) for v in values]
    if datatype == "FP64":
        return [float(v) for v in values]
    if datatype == "BOOL":
        return [bool(v) for v in values]
    return [v if isinstance(v, str) else orjson.dumps(v).decode() for v in values]


def _raw(values: Any, datatype: str) -> bytes:
    import numpy as np

    if datatype == "BYTES":
        encoded = [v.encode() for v in values]
        return b"".join(len(v).to_bytes(4, "little") + v for v in encoded)
    return np.asarray(values, dtype=_NUMPY[datatype]).tobytes()


def v2_body(answer: Answer, model: ServedModel, request: V2Request) -> tuple[bytes, int | None]:
    """A v2 infer response (``model_name``/``model_version`` are part of the protocol) and,
    when some output goes binary, the length of its JSON header (``None``: all JSON)."""
    rows = len(answer.predictions)
    produced: dict[str, tuple[str, list[int], Any]] = {}
    datatype = prediction_datatype(model)
    produced["predictions"] = (datatype, [rows], _typed(answer.predictions, datatype))
    if answer.probabilities is not None and model.engine != "transformers":
        produced["probabilities"] = (
            "FP64",
            list(answer.probabilities.shape),
            answer.probabilities.ravel(),
        )
    names = list(request.outputs) if request.outputs is not None else list(produced)
    outputs, blobs = [], []
    for name in names:
        kind, shape, data = produced[name]
        binary = request.outputs[name] if request.outputs is not None else request.binary_default
        output: dict[str, Any] = {"name": name, "datatype": kind, "shape": shape}
        if binary:
            blobs.append(_raw(data, kind))
            output["parameters"] = {"binary_data_size": len(blobs[-1])}
        else:
            output["data"] = data.tolist() if hasattr(data, "tolist") else data
        outputs.append(output)
    header = orjson.dumps(
        {
            "model_name": model.name,
            "model_version": model.version,
            "id": request.id,
            "parameters": {"mlflow_run_id": model.run_id},
            "outputs": outputs,
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )
    if not blobs:
        return header, None
    return header + b"".join(blobs), len(header)
