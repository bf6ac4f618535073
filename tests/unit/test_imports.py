"""Cold-start hygiene: importing our modules pulls in nothing heavy and has no side effects."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _modules_after(code: str, cwd: Path) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "MODELOPS_HOME": str(cwd / "home")},
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_training_flow_never_imports_torch_or_transformers(tmp_path: Path) -> None:
    loaded = _modules_after("import flows.training", tmp_path)
    assert "flows.training" in loaded
    assert not {"torch", "transformers", "tokenizers"} & loaded


def test_core_package_import_is_light_and_writes_nothing(tmp_path: Path) -> None:
    loaded = _modules_after(
        "import modelops, modelops.settings, modelops.errors, modelops.data, modelops.api",
        tmp_path,
    )
    heavy = {"prefect", "mlflow", "great_expectations", "sklearn", "torch", "matplotlib"}
    assert not heavy & {m.split(".")[0] for m in loaded}
    assert list(tmp_path.iterdir()) == []  # no MLflow db, no home folder, nothing
