"""The Open Inference Protocol v2's binary tensor data extension, byte for byte, and output
datatypes that follow the model, not one answer's values."""

from __future__ import annotations

import json
import struct
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from modelops.serving.model import Answer, Column
from modelops.serving.protocols import (
    HEADER_LENGTH,
    BadRequest,
    V2Request,
    parse_v2,
    prediction_datatype,
    v2_body,
)


def _model(engine: str = "sklearn", classes: list[Any] | None = None, **extra: Any) -> Any:
    return SimpleNamespace(
        name="m",
        version="3",
        run_id="r",
        engine=engine,
        classes=classes or [],
        is_classifier=bool(classes),
        columns=[Column("x", "double"), Column("city", "string")],
        numeric_fast_path=False,
        missing_ok=None,
        **extra,
    )


def _bytes_tensor(texts: list[str]) -> bytes:
    return b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in texts)


def test_bytes_outputs_are_length_prefixed_little_endian() -> None:
    model = _model(classes=["no", "sí"])
    answer = Answer(["sí", "no"], np.array([[0.2, 0.8], [0.9, 0.1]]), ["no", "sí"])
    request = V2Request(None, "id-1", {}, {"predictions": True, "probabilities": False})
    body, length = v2_body(answer, model, request)
    assert length is not None
    header = json.loads(body[:length])
    predictions, probabilities = header["outputs"]
    assert predictions["datatype"] == "BYTES" and "data" not in predictions
    assert probabilities["data"] == [0.2, 0.8, 0.9, 0.1]
    raw = body[length:]
    assert (
        raw
        == _bytes_tensor(["sí", "no"])
        == struct.pack("<I", 3) + "sí".encode() + b"\x02\x00\x00\x00no"
    )
    assert predictions["parameters"]["binary_data_size"] == len(raw)


def test_all_json_unless_asked() -> None:
    model = _model(classes=[0, 1])
    answer = Answer([1, 0], np.array([[0.2, 0.8], [0.9, 0.1]]), [0, 1])
    body, length = v2_body(answer, model, V2Request(None, None, {}))
    assert length is None and json.loads(body)["outputs"][0]["data"] == [1, 0]
    body, length = v2_body(answer, model, V2Request(None, None, {}, None, True))
    assert length is not None
    assert np.frombuffer(body[length : length + 16], "<i8").tolist() == [1, 0]
    assert np.frombuffer(body[length + 16 :], "<f8").tolist() == [0.2, 0.8, 0.9, 0.1]


def test_binary_inputs_of_every_kind_are_read_in_order() -> None:
    model = _model()
    x = np.array([1.5, -2.0], dtype="<f4").tobytes()
    city = _bytes_tensor(["Zürich", ""])
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [2, 1],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(x)},
                },
                {
                    "name": "city",
                    "shape": [2],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(city)},
                },
            ],
            "outputs": [{"name": "predictions", "parameters": {"binary_data": True}}],
        }
    ).encode()
    parsed = parse_v2(header + x + city, model, str(len(header)))
    assert parsed.inputs["x"].tolist() == [1.5, -2.0]
    assert parsed.inputs["city"].tolist() == ["Zürich", ""]
    assert parsed.outputs == {"predictions": True}


def test_a_text_model_takes_binary_texts() -> None:
    texts = _bytes_tensor(["great product", "awful"])
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "text",
                    "shape": [2],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(texts)},
                }
            ]
        }
    ).encode()
    parsed = parse_v2(header + texts, _model("transformers"), str(len(header)))
    assert parsed.inputs == ["great product", "awful"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (struct.pack("<I", 10) + b"abc", "runs past its data"),
        (b"\x01\x00", "4-byte length is cut off"),
        (struct.pack("<I", 2) + b"\xff\xfe", "not UTF-8"),
    ],
)
def test_broken_bytes_tensors_are_named(raw: bytes, message: str) -> None:
    header = json.dumps(
        {
            "inputs": [
                {"name": "city", "datatype": "BYTES", "parameters": {"binary_data_size": len(raw)}}
            ]
        }
    ).encode()
    with pytest.raises(BadRequest, match=message):
        parse_v2(header + raw, _model(), str(len(header)))


@pytest.mark.parametrize(
    ("engine", "classes", "datatype"),
    [
        ("sklearn", [0, 1], "INT64"),
        ("onnx", [0, 1], "INT64"),
        ("sklearn", [True, False], "BOOL"),
        ("sklearn", [0.0, 1.5], "FP64"),
        ("sklearn", ["no", "yes"], "BYTES"),
        ("sklearn", [], "FP64"),  # a regressor
        ("transformers", ["pos", "neg"], "BYTES"),
        ("pyfunc", [], "BYTES"),
    ],
)
def test_the_predictions_datatype_follows_the_model(
    engine: str, classes: list[Any], datatype: str
) -> None:
    assert prediction_datatype(_model(engine, classes)) == datatype


def test_the_header_length_is_a_number_of_bytes() -> None:
    with pytest.raises(BadRequest, match=HEADER_LENGTH):
        parse_v2(b"{}", _model(), "-1")
