"""The ONNX fast path: convert a scikit-learn version, and use it only if it answers the same.

A version's pipeline is converted with skl2onnx (float32 inputs, one per column) and run with
onnxruntime on the held-out rows stored beside the model (``holdout.parquet``, written at
training). It is used only if, on every row, the predicted label is the same and every class
probability is within ``TOLERANCE`` of scikit-learn's; otherwise, or when a step has no
converter (tree thresholds can flip in float32; a date transform cannot convert), the server
answers with scikit-learn, and ``/version`` says why.

Column names are the user's (spaces, dots, unicode, a leading digit...); skl2onnx turns them
into graph input names of its own (``mean radius`` → ``mean_radius``, and a second
``mean_radius`` → ``mean_radius1``). The graph's inputs keep the signature's order, so the report
keeps the graph's names in that order (``onnx_inputs``) and every feed goes by position, never
by a name guessed from the column's. A fast path may never stop a version from being served:
whatever fails while converting or verifying, the answer is scikit-learn's, with the reason.
"""

from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path
from typing import Any

from modelops.serving.model import FAST_PATH_REPORT, ONNX_FILE, Column

TOLERANCE = 1e-6


def prepare(folder: Path, columns: list[Column]) -> dict[str, Any]:
    """Convert and verify; write ``fast_path/model.onnx`` and ``fast_path/report.json`` into
    the local model copy. Returns the report (``used``, ``why``, ``max_difference``, ...)."""
    try:
        report = _prepare(folder, columns)
    except Exception as exc:  # verification too: a fast path never stops a model being served
        report = {"used": False, "why": f"not verified: {type(exc).__name__}: {_line(exc)}"}
    path = folder / FAST_PATH_REPORT
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(report, indent=2, default=str))
    partial.replace(path)  # atomic: a worker never reads half a report
    return report


def _prepare(folder: Path, columns: list[Column]) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    from modelops.model_io import HOLDOUT_FILE
    from modelops.serving.model import read_mlmodel
    from modelops.serving.scoring import conform_columns

    mlmodel = read_mlmodel(folder)
    flavor = (mlmodel.get("flavors") or {}).get("sklearn")
    if flavor is None:
        return {"used": False, "why": "not a scikit-learn model"}
    if not (folder / HOLDOUT_FILE).is_file():
        return {"used": False, "why": "no held-out rows stored with this version to verify it"}
    if any(
        c.type not in ("double", "float", "long", "integer", "boolean", "string") for c in columns
    ):
        return {"used": False, "why": "an input type ONNX cannot take (dates)"}
    from modelops.serving.model import _SklearnImpl

    model = _SklearnImpl(folder, flavor).model
    holdout = conform_columns(pd.read_parquet(folder / HOLDOUT_FILE), columns)
    started = time.perf_counter()
    try:
        onx = convert(model, columns)
    except Exception as exc:  # no converter for a step, an option it does not support, ...
        return {"used": False, "why": f"cannot convert: {type(exc).__name__}: {_line(exc)}"}
    import onnxruntime as ort

    names = [i.name for i in onx.graph.input]
    if len(names) != len(columns):
        return {
            "used": False,
            "why": f"the graph has {len(names)} inputs for {len(columns)} columns",
        }
    session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = feeds_for(holdout, columns, names)
    labels, proba = session.run(None, feeds)[:2]
    expected = model.predict_proba(holdout)
    difference = float(np.abs(np.asarray(proba) - expected).max()) if len(holdout) else 0.0
    same_labels = bool((np.asarray(labels).ravel() == model.predict(holdout)).all())
    report: dict[str, Any] = {
        "rows_checked": len(holdout),
        "max_difference": difference,
        "same_labels": same_labels,
        "tolerance": TOLERANCE,
        "convert_seconds": round(time.perf_counter() - started, 3),
        "classes": [_plain(c) for c in getattr(model, "classes_", [])],
        "onnx_inputs": names,
    }
    if not same_labels or difference > TOLERANCE:
        why = (
            "a predicted label differs"
            if not same_labels
            else f"probabilities differ by up to {difference:.2e} (> {TOLERANCE:g})"
        )
        return {**report, "used": False, "why": f"ONNX answers differ on held-out rows: {why}"}
    target = folder / ONNX_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}")
    partial.write_bytes(onx.SerializeToString())
    partial.replace(target)
    return {**report, "used": True, "why": "ONNX answers match scikit-learn on held-out rows"}


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [""])[0][:200]


def feeds_for(frame: Any, columns: list[Column], names: list[str]) -> dict[str, Any]:
    """onnxruntime inputs: one (n, 1) array per column, float32 or strings, under the graph's
    input name at the column's position (``names``, in signature order)."""
    import numpy as np

    feeds = {}
    for column, name in zip(columns, names, strict=True):
        values = frame[column.name].to_numpy()
        if column.type == "string":
            feeds[name] = values.astype(object).reshape(-1, 1)
        else:
            feeds[name] = values.astype(np.float32).reshape(-1, 1)
    return feeds


def convert(model: Any, columns: list[Column]) -> Any:
    """The pipeline as an ONNX graph (probabilities as a plain tensor, no ZipMap)."""
    import warnings

    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    _register_imputer_with_indicator()
    inputs = [
        (c.name, StringTensorType([None, 1]) if c.type == "string" else FloatTensorType([None, 1]))
        for c in columns
    ]
    estimator = model.steps[-1][1] if hasattr(model, "steps") else model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return to_onnx(
            model,
            initial_types=inputs,
            target_opset={"": 17, "ai.onnx.ml": 3},
            options={id(estimator): {"zipmap": False}},
        )


_REGISTERED = False


def _register_imputer_with_indicator() -> None:
    """skl2onnx converts SimpleImputer only without ``add_indicator``; the training pipeline
    uses it (a missing phone score says something). This converter adds the indicator columns
    (IsNaN of the columns that had missing values in training) after the imputed ones, as
    scikit-learn does, and leaves the plain case to skl2onnx."""
    global _REGISTERED
    if _REGISTERED:
        return
    import numpy as np
    from onnx import TensorProto
    from skl2onnx import get_model_alias, update_registered_converter
    from skl2onnx.algebra.onnx_operator import OnnxSubEstimator
    from skl2onnx.algebra.onnx_ops import OnnxCast, OnnxConcat, OnnxGather, OnnxIsNaN
    from skl2onnx.common.data_types import DoubleTensorType
    from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer
    from skl2onnx.shape_calculators.imputer import calculate_sklearn_imputer_output_shapes
    from sklearn.impute import SimpleImputer

    def shape(operator: Any) -> None:
        calculate_sklearn_imputer_output_shapes(operator)
        op = operator.raw_operator
        if getattr(op, "add_indicator", False) and op.indicator_ is not None:
            rows, width = operator.outputs[0].type.shape
            extra = len(op.indicator_.features_)
            operator.outputs[0].type.shape = [
                rows,
                width + extra if isinstance(width, int) else None,
            ]

    def converter(scope: Any, operator: Any, container: Any) -> None:
        op = operator.raw_operator
        if not getattr(op, "add_indicator", False) or op.indicator_ is None:
            convert_sklearn_imputer(scope, operator, container)
            return
        version = container.target_opset
        plain = copy.deepcopy(op)
        plain.add_indicator, plain.indicator_ = False, None
        source = operator.inputs[0]
        imputed = OnnxSubEstimator(plain, source, op_version=version)
        missing = OnnxGather(
            OnnxIsNaN(source, op_version=version),
            np.array(op.indicator_.features_, dtype=np.int64),
            axis=1,
            op_version=version,
        )
        to = TensorProto.DOUBLE if isinstance(source.type, DoubleTensorType) else TensorProto.FLOAT
        indicator = OnnxCast(missing, to=to, op_version=version)
        OnnxConcat(
            imputed, indicator, axis=1, op_version=version, output_names=operator.outputs[:1]
        ).add_to(scope, container)

    update_registered_converter(
        SimpleImputer, get_model_alias(SimpleImputer), shape, converter, overwrite=True
    )
    _REGISTERED = True
