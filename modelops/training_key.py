"""The training key: what a trained model is a function of, as one digest.

Two training runs with the same key — the same data (content digest), the same parameters once
defaults are resolved, the same project code and the same versions of the libraries that shape
the model — produce the same model, so the second one can reuse the first's registered version
instead of training again. The key is a tag on the version (found with one registry search:
:func:`modelops.registry.versions.versions_with_tag`), so reuse works across machines that share
a tracking server; its readable parts are kept on the run beside it.

What goes in errs towards retraining: any change to the project's source outside the few
folders that never touch fitting (serving, the operator API, Kubernetes, the command line, the
Prefect glue, the registry) is a new code version, because a cache that misses a code change is
worse than one training run too many.
"""

from __future__ import annotations

import functools
import hashlib
import json
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from modelops.types import TrainingKey

KEY_TAG = "modelops.training_key"
KEY_FILE = "training_key.json"  # the readable parts, on the parent run and the version's run
REUSED_TAG = "modelops.reused_version"
REPRODUCES_TAG = "modelops.reproduces"
KEY_VERSION = 1  # bump when what goes into the key changes: old keys then never match

TABULAR_LIBRARIES = ("scikit-learn", "numpy", "pandas", "onnx", "skl2onnx")
TEXT_LIBRARIES = ("transformers", "tokenizers", "torch", "scikit-learn", "numpy")
_SOURCE_FOLDERS = ("modelops", "tasks", "flows")
# Code that never touches how a model is fitted: serving it, the operator API, Kubernetes, the
# command line, the Prefect glue, the registry's bookkeeping. A change there is no reason to
# train again; anything else in the source is (a new module is in the key until listed here).
_NOT_TRAINING = (
    "modelops/serving",
    "modelops/graphql",
    "modelops/k8s",
    "modelops/cli",
    "modelops/orchestration",
    "modelops/rollouts",
    "modelops/registry",
)


def library_versions(names: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of ``names`` ("absent" for one not installed: absent is a state too)."""
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def _package_version() -> str:
    try:
        return metadata.version("modelops-flows")
    except metadata.PackageNotFoundError:
        return "not installed"  # run from a copy of the source: the commit or digest tells


def _source_root() -> Path:
    return Path(__file__).resolve().parents[1]


def source_digest(root: Path | None = None) -> str:
    """A digest of the project's Python source files (names and contents)."""
    root = root or _source_root()
    digest = hashlib.sha256()
    for folder in _SOURCE_FOLDERS:
        for path in sorted((root / folder).rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            if "__pycache__" in path.parts or relative.startswith(_NOT_TRAINING):
                continue
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def _code_version() -> dict[str, str]:
    # Once per process: the code a process runs is the code it imported when it started, so a
    # later edit of the files must not change the key of what this process trains.
    root = _source_root()
    version = {"package": _package_version()}
    commit = _git(root, "rev-parse", "HEAD") if (root / ".git").exists() else None
    if commit:
        version["commit"] = commit
        excluded = [f":(exclude){folder}" for folder in _NOT_TRAINING]
        dirty = _git(root, "status", "--porcelain", "--", *_SOURCE_FOLDERS, *excluded)
        if dirty:
            # A commit plus uncommitted edits is not that commit: the edits are in the key.
            version["dirty"] = source_digest(root)
    else:
        version["source"] = source_digest(root)
    return version


def code_version() -> dict[str, str]:
    """The project's code version: the package version, plus the git commit (and a digest of
    the source when the checkout has uncommitted changes), else a digest of the source files."""
    return dict(_code_version())


def _jsonable(value: Any) -> Any:
    """Parameters as JSON, deterministically: what json cannot hold is named by its repr."""
    return json.loads(json.dumps(value, sort_keys=True, default=repr))


def make_key(
    kind: str,
    data: dict[str, Any],
    params: dict[str, Any],
    libraries: tuple[str, ...],
) -> TrainingKey:
    """The key of a training run from its data identity and resolved parameters.

    Args:
        kind: what trains ("tabular", "tuning", "text"): the same parameters under another
            kind of run are another model.
        data: the data's identity; ``digest`` is the content digest, ``source`` where it was
            read (recorded for reproduction, left out of the digest: moving a file does not
            change the model).
        params: every parameter that changes the model, defaults resolved.
        libraries: the distributions whose versions shape the model.

    Returns:
        The key: its hex digest and the parts it was computed from.
    """
    parts = {
        "key_version": KEY_VERSION,
        "kind": kind,
        "data": _jsonable(data),
        "params": _jsonable(params),
        "code": code_version(),
        "libraries": library_versions(libraries),
    }
    hashed = {**parts, "data": {k: v for k, v in parts["data"].items() if k != "source"}}
    text = json.dumps(hashed, sort_keys=True, separators=(",", ":"))
    return TrainingKey(digest=hashlib.sha256(text.encode()).hexdigest(), parts=parts)


def differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What differs between two keys' code and library versions, one line each (for a
    reproduction's warnings)."""
    lines = []
    for section in ("code", "libraries"):
        was, now = recorded.get(section) or {}, current.get(section) or {}
        for name in sorted(set(was) | set(now)):
            if was.get(name) != now.get(name):
                lines.append(f"{section} {name}: recorded {was.get(name)}, now {now.get(name)}")
    return lines
