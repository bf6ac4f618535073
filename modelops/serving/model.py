"""A registered version loaded for serving, from a local copy of its files (no MLflow import).

The server's workers load the copy the ``modelops serve`` process downloaded; how a version
answers depends on what it is and on what was verified beside it:

- ``onnx``: a scikit-learn model converted to ONNX whose answers matched the original on the
  version's held-out rows (see :mod:`modelops.serving.fast_path`); run with onnxruntime.
- ``sklearn``: the scikit-learn model itself (skops format, no torch).
- ``transformers``: a text classifier, as a transformers pipeline (top labels with scores).
- ``pyfunc``: anything else, through MLflow's generic loader.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelops.errors import ConfigurationError

ONNX_FILE = "fast_path/model.onnx"
FAST_PATH_REPORT = "fast_path/report.json"
MISSING_REPORT = "checks/missing.json"  # which columns may be missing (serving.missing)


@dataclass(frozen=True)
class Column:
    """One input column of a model's signature."""

    name: str
    type: str  # MLflow's type name: double, long, boolean, string, datetime, ...
    required: bool = True


@dataclass
class Answer:
    """What a model said for a batch: one prediction per row, and class probabilities when it
    is a classifier (columns in ``classes`` order)."""

    predictions: list[Any]
    probabilities: Any = None
    classes: list[Any] = field(default_factory=list)


class Batch:
    """Input columns as 1-D float64 arrays, for a model whose inputs are all numbers: what ONNX
    scores without building a DataFrame (a DataFrame costs more than ONNX's answer), and what
    scikit-learn gets as a DataFrame without the general path's column-by-column conversion."""

    __slots__ = ("columns", "matrix", "rows")

    def __init__(self, columns: dict[str, Any], rows: int, matrix: Any = None) -> None:
        self.columns = columns
        self.rows = rows
        self.matrix = matrix  # (columns, rows) float64; ``columns`` are views of its rows

    @classmethod
    def numeric(cls, values: dict[Any, Any], names: list[str]) -> Batch | None:
        """Exactly the columns ``names``, each a sequence of plain numbers (or nulls) of one
        length; ``None`` for anything else (the general path converts it or says why not).

        One array for the whole batch, built in one call: checking every value then costs a
        couple of reductions instead of a few numpy calls per column (a one-row request's
        whole server CPU is a fraction of a millisecond)."""
        import numpy as np

        if len(values) != len(names) or any(name not in values for name in names):
            return None
        try:
            matrix = np.array([values[name] for name in names], dtype=np.float64)
        except (TypeError, ValueError):  # text, nested or ragged columns
            return None
        if matrix.ndim != 2 or not matrix.shape[1]:
            return None
        return cls(dict(zip(names, matrix, strict=True)), matrix.shape[1], matrix)

    def __len__(self) -> int:
        return self.rows

    def __getitem__(self, name: str) -> Any:
        return self.columns[name]

    def to_frame(self) -> Any:
        """As a DataFrame (off the request path: samples for the monitoring flow)."""
        import pandas as pd

        return pd.DataFrame(self.columns)


def read_mlmodel(folder: Path) -> dict[str, Any]:
    """The ``MLmodel`` file of a local model copy, parsed."""
    import yaml

    return yaml.safe_load((folder / "MLmodel").read_text())


def signature_columns(mlmodel: dict[str, Any]) -> list[Column]:
    """The input columns a model's signature declares (empty when it has none)."""
    raw = (mlmodel.get("signature") or {}).get("inputs")
    if not raw:
        return []
    return [
        Column(c.get("name", ""), c.get("type", "string"), c.get("required", True))
        for c in json.loads(raw)
    ]


class ServedModel:
    """A model version ready to answer requests in this process."""

    def __init__(
        self,
        folder: Path,
        name: str,
        version: str,
        *,
        alias: str | None = None,
        run_id: str | None = None,
        fast_path: bool = True,
    ) -> None:
        self.folder = folder
        self.name = name
        self.version = version
        self.alias = alias
        self.mlmodel = read_mlmodel(folder)
        self.run_id = run_id or self.mlmodel.get("run_id")
        self.columns = signature_columns(self.mlmodel)
        self.flavors = sorted(self.mlmodel.get("flavors") or {})
        self.metadata = self.mlmodel.get("metadata") or {}
        self.fast_path_report = self._fast_path_report()
        self.missing_ok = self._missing_ok()
        started = time.perf_counter()
        self.engine, self._impl = self._load(fast_path)
        # Requests of plain numbers skip the DataFrame when every input is a float column.
        self.numeric_fast_path = (
            self.engine in ("onnx", "sklearn")
            and bool(self.columns)
            and all(c.type in ("double", "float") for c in self.columns)
        )
        self.load_seconds = time.perf_counter() - started
        self.loaded_at = datetime.now(UTC).isoformat()

    def _fast_path_report(self) -> dict[str, Any]:
        path = self.folder / FAST_PATH_REPORT
        if path.is_file():
            return dict(json.loads(path.read_text()))
        return {"used": False, "why": "not checked (no verification was run for this copy)"}

    def _missing_ok(self) -> frozenset[str] | None:
        """The columns a missing value may reach the model in (``None``: not known)."""
        path = self.folder / MISSING_REPORT
        if not path.is_file():
            return None
        names = json.loads(path.read_text()).get("missing_ok")
        return None if names is None else frozenset(names)

    def _load(self, fast_path: bool) -> tuple[str, Any]:
        if "transformers" in self.flavors:
            return "transformers", _TextImpl(self.folder)
        if "sklearn" in self.flavors:
            if (
                fast_path
                and self.fast_path_report.get("used")
                and (self.folder / ONNX_FILE).is_file()
            ):
                try:
                    return "onnx", _OnnxImpl(self.folder / ONNX_FILE, self.columns)
                except Exception as exc:  # a fast path never stops a version being served
                    why = (str(exc).splitlines() or [""])[0][:200]
                    self.fast_path_report = {
                        **self.fast_path_report,
                        "used": False,
                        "why": f"the verified ONNX copy did not load: {type(exc).__name__}: {why}",
                    }
            return "sklearn", _SklearnImpl(self.folder, self.mlmodel["flavors"]["sklearn"])
        return "pyfunc", _PyfuncImpl(self.folder)

    @property
    def is_classifier(self) -> bool:
        """Whether answers carry class probabilities."""
        return bool(getattr(self._impl, "classes", None))

    @property
    def classes(self) -> list[Any]:
        """The class labels, for classifiers."""
        return list(getattr(self._impl, "classes", []) or [])

    def predict(self, inputs: Any) -> Answer:
        """Answer a batch: ``inputs`` is what :mod:`modelops.serving.protocols` parsed (a
        DataFrame conformed to the signature, or a list of texts)."""
        return self._impl.predict(inputs)

    def describe(self) -> dict[str, Any]:
        """What ``/version`` says: which model answers, from which run, loaded when, how."""
        return {
            "model_name": self.name,
            "model_version": self.version,
            "alias": self.alias,
            "mlflow_run_id": self.run_id,
            "loaded_at": self.loaded_at,
            "load_seconds": round(self.load_seconds, 3),
            "engine": self.engine,
            "flavors": self.flavors,
            "fast_path": self.fast_path_report,
            "missing_values_taken_in": None if self.missing_ok is None else sorted(self.missing_ok),
            "inputs": [c.__dict__ for c in self.columns],
        }


class _SklearnImpl:
    def __init__(self, folder: Path, flavor: dict[str, Any]) -> None:
        from modelops.model_io import import_skops

        path = folder / flavor["pickled_model"]
        if flavor.get("serialization_format", "skops") != "skops":
            raise ConfigurationError(
                f"{path.name} is pickled ({flavor.get('serialization_format')}): this server "
                f"loads scikit-learn models in the skops format only (loading a pickle can run "
                f"any code). Re-log the model with serialization_format='skops'."
            )
        skops_io = import_skops()
        trusted = list(flavor.get("skops_trusted_types") or [])
        self.model = skops_io.load(path, trusted=trusted or None)
        # Plain Python labels (numpy's int64 is no int): answers say INT64 as the metadata does.
        self.classes = [_plain(c) for c in getattr(self.model, "classes_", [])]
        self.has_proba = hasattr(self.model, "predict_proba")

    def predict(self, frame: Any) -> Answer:
        if isinstance(frame, Batch):
            frame = frame.to_frame()
        if self.classes and self.has_proba:
            proba = self.model.predict_proba(frame)
            labels = [self.classes[i] for i in proba.argmax(axis=1)]
            return Answer(labels, proba, self.classes)
        return Answer([_plain(p) for p in self.model.predict(frame)])


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


class _OnnxImpl:
    def __init__(self, path: Path, columns: list[Column]) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # one request per thread; workers give parallelism
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        report = json.loads((path.parent / "report.json").read_text())
        self.classes = report.get("classes", [])
        graph = self.session.get_inputs()
        # The graph's input names are skl2onnx's, in signature order (see fast_path); a report
        # written before it kept them had only names that needed no renaming.
        names = report.get("onnx_inputs") or [c.name for c in columns]
        if len(names) != len(columns) or {i.name for i in graph} != set(names):
            raise ConfigurationError(
                f"the ONNX inputs {[i.name for i in graph]} do not match the signature's "
                f"{[c.name for c in columns]}"
            )
        kinds = {i.name: i.type for i in graph}
        self.inputs = [(n, c.name, kinds[n]) for n, c in zip(names, columns, strict=True)]
        self.columns = columns

    def predict(self, frame: Any) -> Answer:
        import numpy as np

        feeds = {}
        for name, column_name, kind in self.inputs:
            column = np.asarray(frame[column_name])  # a DataFrame's column, or a Batch's array
            if kind == "tensor(string)":
                feeds[name] = column.astype(object).reshape(-1, 1)
            else:
                feeds[name] = column.astype(np.float32).reshape(-1, 1)
        labels, proba = self.session.run(None, feeds)[:2]
        return Answer(np.asarray(labels).ravel().tolist(), np.asarray(proba), self.classes)


class _TextImpl:
    def __init__(self, folder: Path) -> None:
        import mlflow.transformers

        from modelops.text.training import quiet_transformers

        quiet_transformers()
        self.pipe = mlflow.transformers.load_model(str(folder), return_type="pipeline")
        config = getattr(self.pipe.model, "config", None)
        self.classes = list((getattr(config, "id2label", None) or {}).values())

    def predict(self, texts: list[str]) -> Answer:
        """The best label and its score per text (MLflow's answer for this task), with every
        label's score kept as ``probabilities`` (``top_k`` answers and telemetry use them)."""
        import numpy as np

        results = self.pipe(list(texts), top_k=None, truncation=True)
        if results and isinstance(results[0], dict):
            results = [[r] for r in results]
        classes = self.classes or sorted({c["label"] for r in results for c in r})
        proba = np.zeros((len(results), len(classes)))
        index = {label: i for i, label in enumerate(classes)}
        for row, scored in enumerate(results):
            for c in scored:
                proba[row, index[c["label"]]] = float(c["score"])
        best = [
            {"label": classes[i], "score": float(proba[row, i])}
            for row, i in enumerate(proba.argmax(axis=1))
        ]
        return Answer(best, proba, classes)


class _PyfuncImpl:
    def __init__(self, folder: Path) -> None:
        import mlflow.pyfunc

        self.model = mlflow.pyfunc.load_model(str(folder))

    def predict(self, inputs: Any) -> Answer:
        out = self.model.predict(inputs)
        values = out.tolist() if hasattr(out, "tolist") else list(out)
        return Answer(values)
