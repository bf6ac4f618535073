"""Open Inference Protocol v2 spoken exactly, and no input a 5xx, on both engines.

`modelops serve` runs as real processes on loopback, one per engine — the verified ONNX fast
path and scikit-learn (``--no-fast-path``) — on one store, shared by the module. Clients nobody
on this project wrote talk to them unchanged: tritonclient (JSON and binary tensors, every
route it calls) and the KServe SDK's REST calls as its source makes them (the SDK itself cannot
be installed beside pandas 3). A corpus of bad inputs in every content type must give a 4xx
with one line, the same status from both engines, and leave both servers answering.
"""

from __future__ import annotations

import contextlib
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from support import wait_http
from support_serving import serving, serving_process

pytestmark = pytest.mark.slow

MODEL = "lead-scoring"
COLUMNS = [
    "completeness",
    "email_confidence",
    "phone_confidence",
    "source_priority",
    "intent_signal_score",
]
HEADER = "Inference-Header-Content-Length"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A store with the lead model as version 1."""
    from support import register_fixture_version

    folder = tmp_path_factory.mktemp("protocols")
    env = {
        "MODELOPS_HOME": str(folder),
        "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}",
        "MLFLOW_EXPERIMENT_NAME": "protocol-tests",
        # Telemetry has tests of its own; here it would only cost CPU the servers share.
        "MODELOPS_DISABLE_RUNTIME_LOGGING": "true",
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        assert register_fixture_version(MODEL, stage=False) == "1"
        yield {"env": env, "folder": folder}


@pytest.fixture(scope="module")
def engines(store: dict[str, Any]) -> Iterator[dict[str, str]]:
    """Both engines serving version 1, started side by side: {"onnx": url, "sklearn": url}."""
    with contextlib.ExitStack() as stack:
        started = {
            engine: stack.enter_context(
                serving_process(MODEL, "--version", "1", *extra, env=store["env"], ready=False)
            )
            for engine, extra in (("onnx", ()), ("sklearn", ("--no-fast-path",)))
        }
        for url, proc in started.values():
            wait_http(f"{url}/ping", proc, timeout=120)
        urls = {engine: url for engine, (url, _) in started.items()}
        for engine, url in urls.items():
            assert httpx.get(f"{url}/version").json()["engine"] == engine
        yield urls


@pytest.fixture(params=["onnx", "sklearn"])
def url(request: pytest.FixtureRequest, engines: dict[str, str]) -> str:
    return engines[request.param]


def _rows(n: int = 4, seed: int = 5) -> pd.DataFrame:
    from modelops.sample import make_leads

    # No gaps: JSON has no NaN to send them as (a gap is null, which has tests of its own).
    rows = make_leads(4 * n, seed=seed).drop(columns="won").astype("float64").dropna()
    return rows.head(n).reset_index(drop=True)


def _mlflow_answer(url: str, rows: pd.DataFrame) -> dict[str, Any]:
    split = json.loads(rows.to_json(orient="split", index=False))
    answer = httpx.post(
        f"{url}/invocations",
        json={"dataframe_split": split, "params": {"probabilities": True}},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


# ------------------------------------------------------------------ tritonclient, unchanged


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_speaks_to_both_engines_unchanged(url: str, binary: bool) -> None:
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    client = triton.InferenceServerClient(url.removeprefix("http://"))
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready(MODEL) and client.is_model_ready(MODEL, "1")
        assert not client.is_model_ready("no-such-model")
        assert not client.is_model_ready(MODEL, "2")
        server = client.get_server_metadata()
        assert server["name"] == "modelops" and "binary_tensor_data" in server["extensions"]
        for version in ("", "1"):
            meta = client.get_model_metadata(MODEL, version)
            assert [i["name"] for i in meta["inputs"]] == COLUMNS and meta["versions"] == ["1"]
        rows = _rows()
        inputs = []
        for column in COLUMNS:
            tensor = triton.InferInput(column, [len(rows), 1], "FP64")
            tensor.set_data_from_numpy(rows[[column]].to_numpy(), binary_data=binary)
            inputs.append(tensor)
        # The client's default asks for every output in binary; JSON outputs must be asked for.
        outputs = (
            None
            if binary
            else [
                triton.InferRequestedOutput("predictions", binary_data=False),
                triton.InferRequestedOutput("probabilities", binary_data=False),
            ]
        )
        expected = _mlflow_answer(url, rows)
        for version in ("", "1"):
            result = client.infer(MODEL, inputs, model_version=version, outputs=outputs)
            predictions = result.as_numpy("predictions")
            assert predictions.dtype == np.int64
            assert predictions.tolist() == expected["predictions"]
            np.testing.assert_allclose(
                result.as_numpy("probabilities"), expected["probabilities"], atol=1e-12
            )
            response = result.get_response()
            assert (response["model_name"], response["model_version"]) == (MODEL, "1")
        with pytest.raises(InferenceServerException, match="serves 'lead-scoring' version 1"):
            client.infer("no-such-model", inputs)
        # JSON has no infinity: the client writes a bare Infinity, which is not JSON.
        refused = "Column 'completeness', row 1" if binary else "not valid JSON"
        with pytest.raises(InferenceServerException, match=refused):
            bad = triton.InferInput("completeness", [1, 1], "FP64")
            bad.set_data_from_numpy(np.array([[np.inf]]), binary_data=binary)
            others = [triton.InferInput(c, [1, 1], "FP64") for c in COLUMNS[1:]]
            for tensor in others:
                tensor.set_data_from_numpy(np.array([[0.5]]), binary_data=binary)
            client.infer(MODEL, [bad, *others])
    finally:
        client.close()


# --------------------------------------------- the KServe SDK's REST calls, as it makes them


def test_the_kserve_sdk_rest_calls_work_on_both_engines(url: str) -> None:
    """kserve 0.21's ``InferenceRESTClient`` (kserve/inference_client.py): ``is_server_live``
    reads ``live``, ``is_server_ready``/``is_model_ready`` read ``ready`` from
    ``/v2/health/ready`` and ``/v2/models/{name}/ready``, and ``infer`` posts
    ``InferRequest.to_rest()`` — binary tensors by default (``set_data_from_numpy``), sent as
    ``application/octet-stream`` with the JSON header's length — and decodes the answer with
    ``InferResponse.from_bytes(content, header length or len(content))``."""
    with httpx.Client(base_url=url, timeout=30) as http:
        assert http.get("/v2/health/live").json().get("live") is True
        assert http.get("/v2/health/ready").json().get("ready") is True
        assert http.get(f"/v2/models/{MODEL}/ready").json().get("ready") is True
        rows = _rows(3)
        raw = [rows[c].to_numpy().astype("<f8").tobytes() for c in COLUMNS]
        header = json.dumps(
            {
                "id": "kserve-1",
                "inputs": [
                    {
                        "name": c,
                        "shape": [3, 1],
                        "datatype": "FP64",
                        "parameters": {"binary_data_size": len(r)},
                    }
                    for c, r in zip(COLUMNS, raw, strict=True)
                ],
                "parameters": {"binary_data_output": True},
            }
        ).encode()
        response = http.post(
            f"/v2/models/{MODEL}/infer",
            content=header + b"".join(raw),
            headers={"content-type": "application/octet-stream", HEADER: str(len(header))},
        )
        assert response.status_code == 200, response.text
        length = int(response.headers.get(HEADER, len(response.content)))
        body = json.loads(response.content[:length])
        assert body["id"] == "kserve-1" and body["model_version"] == "1"
        decoded, at = {}, length
        for output in body["outputs"]:
            size = output["parameters"]["binary_data_size"]
            dtype = {"INT64": "<i8", "FP64": "<f8"}[output["datatype"]]
            decoded[output["name"]] = np.frombuffer(response.content[at : at + size], dtype)
            at += size
        assert at == len(response.content)
        expected = _mlflow_answer(url, rows)
        assert decoded["predictions"].tolist() == expected["predictions"]
        np.testing.assert_allclose(
            decoded["probabilities"].reshape(3, 2), expected["probabilities"], atol=1e-12
        )


# ------------------------------------------------------------- the protocol's exact shapes


def test_v2_errors_are_error_objects_on_every_route(url: str) -> None:
    """Defect 2: ``{"error": "..."}``, unknown routes and methods under /v2 included."""
    cases = [
        httpx.get(f"{url}/v2/no-such-route"),
        httpx.get(f"{url}/v2/models/{MODEL}/infer"),  # the wrong method
        httpx.post(f"{url}/v2/models/{MODEL}/infer", content=b"{not json"),
        httpx.post(f"{url}/v2/models/{MODEL}/infer", json={"inputs": 3}),
        httpx.post(f"{url}/v2/models/no-such-model/infer", json={"inputs": []}),
        httpx.get(f"{url}/v2/models/no-such-model"),
    ]
    assert [r.status_code for r in cases] == [404, 405, 400, 400, 404, 404]
    for r in cases:
        assert r.headers["content-type"].startswith("application/json"), r.text
        body = r.json()
        assert list(body) == ["error"] and body["error"] and "\n" not in body["error"]


def test_v2_server_metadata_and_versioned_routes(url: str) -> None:
    """Defect 3: ``GET /v2`` and ``/v2/models/{name}/versions/{v}[/ready|/infer]``."""
    server = httpx.get(f"{url}/v2").json()
    assert server["name"] == "modelops" and server["version"]
    assert "binary_tensor_data" in server["extensions"]
    versioned = httpx.get(f"{url}/v2/models/{MODEL}/versions/1")
    assert versioned.status_code == 200
    assert versioned.json() == httpx.get(f"{url}/v2/models/{MODEL}").json()
    assert httpx.get(f"{url}/v2/models/{MODEL}/versions/1/ready").json()["ready"] is True
    rows = _rows(2)
    request = {
        "inputs": [
            {"name": c, "shape": [2, 1], "datatype": "FP64", "data": rows[c].tolist()}
            for c in COLUMNS
        ]
    }
    answer = httpx.post(f"{url}/v2/models/{MODEL}/versions/1/infer", json=request)
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"] == "1"
    other = httpx.post(f"{url}/v2/models/{MODEL}/versions/2/infer", json=request)
    assert other.status_code == 404 and "version 1" in other.json()["error"]


def test_an_unknown_model_or_version_is_not_ready(url: str) -> None:
    """Defect 4: readiness of a model this server does not serve is a 404."""
    for path in ("no-such-model/ready", f"{MODEL}/versions/7/ready", "no-such-model"):
        r = httpx.get(f"{url}/v2/models/{path}")
        assert r.status_code == 404 and "error" in r.json(), path
    assert httpx.get(f"{url}/v2/models/{MODEL}/ready").json() == {"name": MODEL, "ready": True}


def test_live_says_live(url: str) -> None:
    """Defect 5: the liveness answer's key is ``live``."""
    assert httpx.get(f"{url}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{url}/v2/health/ready").json() == {"ready": True}


def test_output_datatypes_are_the_metadatas_on_both_engines(url: str) -> None:
    """Defect 7: scikit-learn answered BYTES where the metadata said INT64."""
    meta = httpx.get(f"{url}/v2/models/{MODEL}").json()
    declared = {o["name"]: o["datatype"] for o in meta["outputs"]}
    assert declared == {"predictions": "INT64", "probabilities": "FP64"}
    rows = _rows(3)
    request = {
        "inputs": [
            {"name": c, "shape": [3, 1], "datatype": "FP64", "data": rows[c].tolist()}
            for c in COLUMNS
        ]
    }
    body = httpx.post(f"{url}/v2/models/{MODEL}/infer", json=request).json()
    assert {o["name"]: o["datatype"] for o in body["outputs"]} == declared
    predictions = next(o for o in body["outputs"] if o["name"] == "predictions")["data"]
    assert all(type(p) is int for p in predictions)


def test_binary_tensors_in_and_out(url: str) -> None:
    """Defect 6: the binary data extension for requests (any numeric type, BYTES as 4-byte
    little-endian lengths) and, per output, for answers."""
    rows = _rows(3)
    # completeness as FP32, the source priority as BYTES texts: what a client holding other
    # dtypes sends, read as the signature's doubles.
    tensors = []
    for c in COLUMNS:
        if c == "completeness":
            tensors.append((c, "FP32", rows[c].to_numpy().astype("<f4").tobytes()))
        elif c == "source_priority":
            texts = [repr(float(v)).encode() for v in rows[c]]
            raw = b"".join(struct.pack("<I", len(t)) + t for t in texts)
            tensors.append((c, "BYTES", raw))
        else:
            tensors.append((c, "FP64", rows[c].to_numpy().astype("<f8").tobytes()))
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": c,
                    "shape": [3, 1],
                    "datatype": kind,
                    "parameters": {"binary_data_size": len(raw)},
                }
                for c, kind, raw in tensors
            ],
            "outputs": [
                {"name": "probabilities", "parameters": {"binary_data": True}},
                {"name": "predictions", "parameters": {"binary_data": False}},
            ],
        }
    ).encode()
    r = httpx.post(
        f"{url}/v2/models/{MODEL}/infer",
        content=header + b"".join(raw for _, _, raw in tensors),
        headers={HEADER: str(len(header)), "content-type": "application/octet-stream"},
    )
    assert r.status_code == 200, r.text
    length = int(r.headers[HEADER])
    body = json.loads(r.content[:length])
    outputs = {o["name"]: o for o in body["outputs"]}
    assert [o["name"] for o in body["outputs"]] == ["probabilities", "predictions"]
    assert "data" not in outputs["probabilities"]
    size = outputs["probabilities"]["parameters"]["binary_data_size"]
    assert size == 3 * 2 * 8 == len(r.content) - length
    probabilities = np.frombuffer(r.content[length:], "<f8").reshape(3, 2)
    expected = _mlflow_answer(url, rows)
    assert outputs["predictions"]["data"] == expected["predictions"]
    np.testing.assert_allclose(probabilities, expected["probabilities"], atol=1e-6)  # FP32 in


# -------------------------------------------------------------------- the bad-input corpus


def _v2(values: dict[str, list[Any]] | None = None, **extra: Any) -> bytes:
    rows = {c: [0.5] for c in COLUMNS} | (values or {})
    inputs = [
        {"name": c, "shape": [len(v), 1], "datatype": "FP64", "data": v} for c, v in rows.items()
    ]
    return json.dumps({"inputs": inputs, **extra}).encode()


def _v2_binary(raw: dict[str, bytes], header_length: int | None = None) -> tuple[bytes, dict]:
    blobs = {c: struct.pack("<d", 0.5) for c in COLUMNS} | raw
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": c,
                    "shape": [len(b) // 8, 1],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": len(b)},
                }
                for c, b in blobs.items()
            ]
        }
    ).encode()
    length = len(header) if header_length is None else header_length
    return header + b"".join(blobs.values()), {HEADER: str(length)}


def _csv(cell: str, row: int = 1) -> bytes:
    lines = [",".join(COLUMNS)] + [",".join(["0.5"] * len(COLUMNS)) for _ in range(2)]
    values = lines[row].split(",")
    values[0] = cell
    lines[row] = ",".join(values)
    return "\n".join(lines).encode() + b"\n"


def _split(cell: Any, row: int = 0) -> bytes:
    data = [[0.5] * len(COLUMNS) for _ in range(2)]
    data[row][0] = cell
    return json.dumps({"dataframe_split": {"columns": COLUMNS, "data": data}}).encode()


def _record(cell: Any, key: str = "dataframe_records") -> bytes:
    return json.dumps({key: [{**{c: 0.5 for c in COLUMNS}, "completeness": cell}]}).encode()


INVOCATIONS = "/invocations"
INFER = f"/v2/models/{MODEL}/infer"
JSON_TYPE = {"content-type": "application/json"}
CSV_TYPE = {"content-type": "text/csv"}
ROW_1 = "Column 'completeness', row 1"

# (id, path, body, headers, the message's expected part or None)
CORPUS: list[tuple[str, str, bytes, dict[str, str], str | None]] = [
    ("split-Infinity", INVOCATIONS, _split("Infinity"), JSON_TYPE, ROW_1),
    ("split-minus-inf", INVOCATIONS, _split("-inf", row=1), JSON_TYPE, "row 2"),
    ("split-1e309", INVOCATIONS, _split("1e309"), JSON_TYPE, ROW_1),
    ("split-1e39-beyond-float32", INVOCATIONS, _split(1e39), JSON_TYPE, ROW_1),
    ("split-null", INVOCATIONS, _split(None, row=1), JSON_TYPE, "row 2: a missing value"),
    ("split-NaN-text", INVOCATIONS, _split("NaN"), JSON_TYPE, "a missing value"),
    ("split-bare-NaN", INVOCATIONS, _split(0.5).replace(b"0.5", b"NaN", 1), JSON_TYPE, "JSON"),
    ("split-bare-1e309", INVOCATIONS, _split(0.5).replace(b"0.5", b"1e309", 1), JSON_TYPE, None),
    ("split-text", INVOCATIONS, _split("high"), JSON_TYPE, "expected numbers"),
    ("split-nested", INVOCATIONS, _split([1.0]), JSON_TYPE, "column 'completeness'"),
    ("records-Infinity", INVOCATIONS, _record("Infinity"), JSON_TYPE, ROW_1),
    ("records-null", INVOCATIONS, _record(None), JSON_TYPE, "a missing value"),
    ("instances-inf", INVOCATIONS, _record("inf", "instances"), JSON_TYPE, ROW_1),
    ("instances-null", INVOCATIONS, _record(None, "instances"), JSON_TYPE, "a missing value"),
    (
        "inputs-columns-Infinity",
        INVOCATIONS,
        json.dumps(
            {"inputs": {**{c: [0.5] for c in COLUMNS}, "completeness": ["Infinity"]}}
        ).encode(),
        JSON_TYPE,
        ROW_1,
    ),
    (
        "inputs-rows-null",
        INVOCATIONS,
        json.dumps({"inputs": [[None, 0.5, 0.5, 0.5, 0.5]]}).encode(),
        JSON_TYPE,
        "a missing value",
    ),
    ("inputs-rows-short", INVOCATIONS, b'{"inputs": [[0.5]]}', JSON_TYPE, "must have 5 values"),
    ("csv-inf", INVOCATIONS, _csv("inf"), CSV_TYPE, ROW_1),
    ("csv-1e309", INVOCATIONS, _csv("1e309", row=2), CSV_TYPE, "row 2"),
    ("csv-empty-cell", INVOCATIONS, _csv(""), CSV_TYPE, "a missing value"),
    ("csv-NaN", INVOCATIONS, _csv("NaN"), CSV_TYPE, "a missing value"),
    ("csv-text", INVOCATIONS, _csv("high"), CSV_TYPE, "expected numbers"),
    ("csv-header-only", INVOCATIONS, ",".join(COLUMNS).encode(), CSV_TYPE, "Empty batch"),
    ("csv-garbage", INVOCATIONS, b'a,"b\n\x00', CSV_TYPE, None),
    ("no-content-type", INVOCATIONS, _split(0.5), {}, "Unsupported Content-Type"),
    ("not-an-object", INVOCATIONS, b"[1, 2]", JSON_TYPE, "must be a JSON object"),
    ("params-not-object", INVOCATIONS, b'{"inputs": [], "params": 3}', JSON_TYPE, "'params'"),
    ("v2-null", INFER, _v2({"completeness": [None]}), JSON_TYPE, "a missing value"),
    ("v2-Infinity", INFER, _v2({"completeness": ["Infinity"]}), JSON_TYPE, ROW_1),
    ("v2-text", INFER, _v2({"completeness": ["high"]}), JSON_TYPE, "expected numbers"),
    ("v2-bare-NaN", INFER, _v2().replace(b"0.5", b"NaN", 1), JSON_TYPE, "JSON"),
    ("v2-rows-differ", INFER, _v2({"completeness": [0.5, 0.5]}), JSON_TYPE, "same number"),
    ("v2-missing-input", INFER, _v2().replace(b'"completeness"', b'"x"'), JSON_TYPE, None),
    ("v2-no-inputs", INFER, b'{"inputs": 3}', JSON_TYPE, "list of 'inputs'"),
    ("v2-data-not-list", INFER, b'{"inputs": [{"name": "a", "data": 1}]}', JSON_TYPE, "'data'"),
    ("v2-empty", INFER, _v2({c: [] for c in COLUMNS}), JSON_TYPE, "Empty batch"),
    ("v2-unknown-output", INFER, _v2(outputs=[{"name": "nope"}]), JSON_TYPE, "No output 'nope'"),
    ("v2-outputs-not-list", INFER, _v2(outputs=3), JSON_TYPE, "'outputs'"),
    (
        "v2-duplicate-input",
        INFER,
        _v2().replace(b'"email_confidence"', b'"completeness"'),
        JSON_TYPE,
        "more than once",
    ),
    (
        "v2-binary-NaN",
        INFER,
        *_v2_binary({"completeness": struct.pack("<d", np.nan)}),
        "row 1: a missing value",
    ),
    ("v2-binary-inf", INFER, *_v2_binary({"completeness": struct.pack("<d", np.inf)}), ROW_1),
    ("v2-binary-cut", INFER, *_v2_binary({"completeness": b"\x00" * 5}), "whole number"),
    ("v2-binary-header-long", INFER, *_v2_binary({}, header_length=10**6), HEADER),
    ("v2-binary-header-short", INFER, *_v2_binary({}, header_length=7), "not valid JSON"),
    ("v2-binary-header-text", INFER, _v2(), {HEADER: "many"}, HEADER),
    ("v2-binary-left-over", INFER, _v2() + b"\x00" * 8, {HEADER: str(len(_v2()))}, "belong to"),
]


@pytest.mark.parametrize(
    ("path", "body", "headers", "message"),
    [entry[1:] for entry in CORPUS],
    ids=[entry[0] for entry in CORPUS],
)
def test_bad_input_is_the_same_4xx_with_one_line_on_both_engines(
    engines: dict[str, str], path: str, body: bytes, headers: dict, message: str | None
) -> None:
    """Defect 8 and the corpus: a value the model cannot score is refused before either
    engine, naming its column and row; nothing is a 5xx and both engines agree."""
    answers = {
        engine: httpx.post(f"{url}{path}", content=body, headers=headers, timeout=30)
        for engine, url in engines.items()
    }
    statuses = {engine: r.status_code for engine, r in answers.items()}
    assert len(set(statuses.values())) == 1, {e: r.text for e, r in answers.items()}
    for r in answers.values():
        assert 400 <= r.status_code < 500, r.text
        error = r.json()
        text = error["error"] if path == INFER else error["message"]
        assert text and "\n" not in text
        assert message is None or message in text, text
    texts = {(r.json().get("error") or r.json()["message"]) for r in answers.values()}
    if message is not None and "Column" in message:
        assert len(texts) == 1, texts  # the same check, before either engine: the same words


def test_both_servers_still_answer_after_the_corpus(engines: dict[str, str]) -> None:
    for url in engines.values():
        assert httpx.get(f"{url}/ping").status_code == 200
        answer = _mlflow_answer(url, _rows(2))
        assert len(answer["predictions"]) == 2
        text = httpx.get(f"{url}/metrics").text
        assert 'code="500"' not in text


def test_a_column_the_model_imputes_takes_missing_values(engines: dict[str, str]) -> None:
    """What the pipeline can take stays accepted: phone_confidence is imputed."""
    answers = {}
    for engine, url in engines.items():
        about = httpx.get(f"{url}/version").json()
        assert about["missing_values_taken_in"] == ["phone_confidence"]
        r = httpx.post(
            f"{url}/invocations",
            content=_record(0.5).replace(b'"phone_confidence": 0.5', b'"phone_confidence": null'),
            headers=JSON_TYPE,
        )
        assert r.status_code == 200, r.text
        csv = _csv("0.5").replace(b"0.5,0.5,0.5", b"0.5,0.5,", 1)
        assert httpx.post(f"{url}/invocations", content=csv, headers=CSV_TYPE).status_code == 200
        answers[engine] = r.json()["predictions"]
    assert answers["onnx"] == answers["sklearn"]


# --------------------------------------------------- the fast path with any legal column name


@pytest.fixture(scope="module")
def breast_cancer(store: dict[str, Any]) -> Iterator[tuple[str, pd.DataFrame]]:
    """scikit-learn's breast-cancer table ("mean radius", ...), with columns whose names
    skl2onnx renames or makes unique (dots, dashes, unicode, a leading digit, names equal
    after sanitising), trained through the public API and served as version 1."""
    from sklearn.datasets import load_breast_cancer

    from modelops import train_model

    frame = load_breast_cancer(as_frame=True).frame
    features = frame.drop(columns="target")
    odd = {
        "mean_radius": features["mean radius"] / 10,  # "mean radius" once sanitised
        "mean.radius": features["mean texture"] / 10,
        "1st-size": features["mean area"] / 1000,
        "größe µ": features["mean smoothness"],
        "label": features["mean symmetry"],  # the name of skl2onnx's own output
    }
    table = pd.concat([features, pd.DataFrame(odd), frame[["target"]]], axis=1)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in store["env"].items():
            mp.setenv(key, value)
        result = train_model(table, target_column="target", mlflow_model_name="breast-cancer")
    assert str(result.version) == "1"
    with serving("breast-cancer", "--version", "1", env=store["env"]) as url:
        yield url, table.drop(columns="target")


def test_the_default_server_starts_on_any_column_name_and_uses_the_fast_path(
    breast_cancer: tuple[str, pd.DataFrame], store: dict[str, Any]
) -> None:
    """Defect 1: the default server exited 1 on a model with a space in a column name."""
    from modelops.model_io import load_sklearn
    from modelops.tracking import get_client

    url, features = breast_cancer
    about = httpx.get(f"{url}/version").json()
    assert about["engine"] == "onnx", about["fast_path"]
    assert about["fast_path"]["used"] is True
    onnx_names = about["fast_path"]["onnx_inputs"]
    assert len(set(onnx_names)) == len(features.columns)  # unique, though the names were not
    rows = features.sample(50, random_state=3)
    body = httpx.post(
        f"{url}/invocations",
        json={
            "dataframe_split": json.loads(rows.to_json(orient="split", index=False)),
            "params": {"probabilities": True},
        },
        timeout=30,
    ).json()
    model, _ = load_sklearn(get_client(store["env"]["MLFLOW_TRACKING_URI"]), "breast-cancer", "1")
    assert body["predictions"] == model.predict(rows).tolist()
    np.testing.assert_allclose(body["probabilities"], model.predict_proba(rows), atol=1e-6)
    v2 = {
        "inputs": [
            {"name": c, "shape": [len(rows), 1], "datatype": "FP64", "data": rows[c].tolist()}
            for c in rows.columns
        ]
    }
    answer = httpx.post(f"{url}/v2/models/breast-cancer/infer", json=v2, timeout=30).json()
    assert answer["outputs"][0]["data"] == body["predictions"]


def test_a_fast_path_that_fails_verification_falls_back_to_scikit_learn(
    breast_cancer: tuple[str, pd.DataFrame], store: dict[str, Any], tmp_path: Path
) -> None:
    """Defect 1: only the conversion was guarded; a failure while verifying stopped the
    server. Any failure now leaves a report that says why, and scikit-learn answers."""
    import shutil

    from modelops.serving import fast_path
    from modelops.serving.model import ServedModel, read_mlmodel, signature_columns

    served = Path(store["folder"]) / "serving" / "models" / "breast-cancer" / "v1"
    copy = tmp_path / "v1"
    shutil.copytree(served, copy, ignore=shutil.ignore_patterns("fast_path", "serve-*.json"))
    (copy / "holdout.parquet").write_bytes(b"not parquet")
    report = fast_path.prepare(copy, signature_columns(read_mlmodel(copy)))
    assert report["used"] is False and report["why"].startswith("not verified:")
    model = ServedModel(copy, "breast-cancer", "1")
    assert model.engine == "sklearn" and model.describe()["fast_path"]["why"] == report["why"]


# ----------------------------------------------------------------------------- Prometheus


def test_metrics_are_whole_from_the_start_and_the_folder_goes_with_the_server(
    store: dict[str, Any], tmp_path: Path
) -> None:
    """Defect 10: with two workers /metrics was empty before the first request, the dropped
    counter had no sample until a drop, and the multiprocess folder stayed behind."""
    import shutil
    import subprocess

    env = {**store["env"], "TMPDIR": str(tmp_path)}
    with serving_process(MODEL, "--version", "1", "--workers", "2", env=env) as (url, proc):
        folders = list(tmp_path.glob("modelops-metrics-*"))
        assert len(folders) == 1
        text = ""
        for _ in range(4):  # whichever worker answers, the families are all there
            text = httpx.get(f"{url}/metrics").text
            assert 'modelops_telemetry_dropped_total{model="lead-scoring",version="1"} 0.0' in text
            assert "modelops_requests_total" in text and "modelops_request_seconds_bucket" in text
        if shutil.which("promtool"):
            checked = subprocess.run(
                ["promtool", "check", "metrics"], input=text, capture_output=True, text=True
            )
            assert checked.returncode == 0, checked.stdout + checked.stderr
    assert proc.returncode is not None
    assert not list(tmp_path.glob("modelops-metrics-*")), "the metrics folder was left behind"


def test_metrics_pass_promtool_after_traffic(engines: dict[str, str]) -> None:
    import shutil
    import subprocess

    if not shutil.which("promtool"):
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    for url in engines.values():
        _mlflow_answer(url, _rows(2))
        text = httpx.get(f"{url}/metrics").text
        assert 'modelops_telemetry_dropped_total{model="lead-scoring",version="1"} 0.0' in text
        checked = subprocess.run(
            ["promtool", "check", "metrics"], input=text, capture_output=True, text=True
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
