"""Which input columns a version can take a missing value in, found once by asking the model.

A pipeline imputes some columns and not others (an imputer only where training saw gaps or the
schema declared them); a missing value in a column it does not impute makes scikit-learn raise
and ONNX answer NaN. So the server refuses those values itself, before either engine, and for
that it needs the answer to "may this column be missing?": one held-out row is scored with each
column blanked in turn, when ``modelops serve`` prepares the local copy (tens of milliseconds),
and the answer is kept beside the copy for every worker and later start.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

from modelops.serving.model import MISSING_REPORT, Column


def prepare(folder: Path, columns: list[Column]) -> dict[str, Any]:
    """Probe and write ``checks/missing.json`` into the local copy; returns the report
    (``missing_ok``: the columns that may be missing, or ``None`` when it could not be told)."""
    try:
        report = _probe(folder, columns)
    except Exception as exc:  # not knowing only means missing values go to the model
        first = (str(exc).splitlines() or [""])[0][:200]
        report = {"missing_ok": None, "why": f"not probed: {type(exc).__name__}: {first}"}
    path = folder / MISSING_REPORT
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(report, indent=2))
    partial.replace(path)  # atomic: a worker never reads half a report
    return report


def _probe(folder: Path, columns: list[Column]) -> dict[str, Any]:
    import pandas as pd

    from modelops.model_io import HOLDOUT_FILE
    from modelops.serving.model import _SklearnImpl, read_mlmodel
    from modelops.serving.scoring import conform_columns

    flavor = (read_mlmodel(folder).get("flavors") or {}).get("sklearn")
    if flavor is None or not columns:
        return {"missing_ok": None, "why": "not a scikit-learn model with a signature"}
    if not (folder / HOLDOUT_FILE).is_file():
        return {"missing_ok": None, "why": "no held-out row stored with this version"}
    model = _SklearnImpl(folder, flavor).model
    row = conform_columns(pd.read_parquet(folder / HOLDOUT_FILE).head(1), columns)
    if row.empty:
        return {"missing_ok": None, "why": "no held-out row stored with this version"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.predict(row)  # a row that cannot score tells nothing about gaps
        ok = []
        for column in columns:
            if column.type in ("long", "integer"):
                continue  # the signature already refuses a gap there
            blank = row.copy()
            blank[column.name] = pd.Series([None], index=row.index, dtype=object)
            blank = conform_columns(blank, columns)
            try:
                model.predict(blank)
            except Exception:  # what a missing value here does to this model: refuse it
                continue
            ok.append(column.name)
    return {"missing_ok": ok, "why": "each column blanked in turn on a held-out row"}
