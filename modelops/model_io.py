"""Models in MLflow: log fitted models and load registered versions, through explicit URIs.

Logging goes through an ``MlflowClient`` (create the logged model, save the flavour into a
temporary folder, upload, finalize) instead of MLflow's fluent ``log_model``, which needs an
"active run" and the process-wide tracking URI. Loading downloads the version with explicit
tracking and registry URIs, then loads the local copy. Nothing here changes process state.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.registry.versions import logged_model_uri
from modelops.tracking import TrackingContext
from modelops.types import LoggedModel

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.models import Model

# Serving needs exactly these; letting MLflow infer them costs seconds per call and, with torch
# installed, lists torch and pytest for a logistic regression (skops imports them).
SKLEARN_RUNTIME = ("mlflow", "scikit-learn", "skops", "numpy", "pandas", "scipy")


def pinned_requirements(*packages: str) -> list[str]:
    """``name==installed-version`` for each installed package (skips missing ones)."""
    pins = []
    for name in packages:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return pins


def log_model(
    ctx: TrackingContext,
    run_id: str,
    save: Callable[[str, Model], None],
    *,
    name: str = "model",
    flavor: str = "custom",
    metadata: dict[str, Any] | None = None,
) -> LoggedModel:
    """Log a model as an MLflow ``LoggedModel`` under ``run_id``.

    Args:
        ctx: the tracking context (its client and experiment).
        run_id: the run that produced the model.
        save: ``save(path, mlflow_model)`` writes the flavour into ``path`` (e.g. a partial of
            ``mlflow.sklearn.save_model``).
        name: the model's name within the run.
        flavor: the flavour name, recorded as a tag on the logged model.
        metadata: free-form metadata stored in the MLmodel file.

    Returns:
        The logged model's run id, id and ``models:/<id>`` URI.
    """
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.models import Model

    client = ctx.client()
    logged = client.create_logged_model(
        ctx.experiment_id, name=name, source_run_id=run_id, tags={"mlflow.flavor": flavor}
    )
    try:
        mlmodel = Model(
            artifact_path=logged.artifact_location,
            model_uuid=logged.model_id,
            run_id=run_id,
            metadata=metadata,
            model_id=logged.model_id,
        )
        with tempfile.TemporaryDirectory(prefix="modelops-model-") as tmp:
            path = str(Path(tmp) / "model")
            save(path, mlmodel)
            client.log_model_artifacts(logged.model_id, path)
        client.log_outputs(run_id, models=[LoggedModelOutput(logged.model_id, step=0)])
    except BaseException:
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        raise
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    return LoggedModel(
        run_id=run_id, model_id=logged.model_id, model_uri=logged_model_uri(logged.model_id)
    )


def log_sklearn_model(
    ctx: TrackingContext,
    run_id: str,
    model: Any,
    input_example: pd.DataFrame | None,
    name: str = "model",
    metadata: dict[str, Any] | None = None,
    optional_inputs: set[str] | frozenset[str] = frozenset(),
    holdout: pd.DataFrame | None = None,
) -> LoggedModel:
    """Log a fitted scikit-learn model with its signature, input example and requirements.

    The format is skops, not pickle: loading a skops file cannot run arbitrary code, which
    matters for a model that a serving container pulls from a shared registry.

    Args:
        ctx: the tracking context.
        run_id: the run to log under.
        model: the fitted estimator or pipeline.
        input_example: a few rows of features; the signature is inferred from them (None:
            no signature, no example).
        name: the model's name within the run.
        metadata: free-form metadata stored in the MLmodel file.
        optional_inputs: columns that may be missing at inference time (they had missing
            values in training); a few example rows cannot tell.
        holdout: a sample of rows the model never saw (features only), stored beside it as
            ``holdout.parquet``: a server verifies a faster engine against it before using it.
    """
    import mlflow.sklearn
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import ColSpec, Schema

    import_skops()  # before MLflow imports it: see import_skops

    signature = None
    if input_example is not None:
        inferred = infer_signature(input_example, model.predict(input_example))
        inputs = Schema(
            [
                ColSpec(c.type, c.name, required=c.name not in optional_inputs)
                for c in inferred.inputs.inputs
            ]
        )
        signature = ModelSignature(inputs=inputs, outputs=inferred.outputs)

    def save(path: str, mlmodel: Model) -> None:
        with _pins_need_no_environment_scan():
            mlflow.sklearn.save_model(
                model,
                path,
                mlflow_model=mlmodel,
                serialization_format="skops",
                skops_trusted_types=_trusted_types(model),
                signature=signature,
                input_example=input_example,
                pip_requirements=pinned_requirements(*SKLEARN_RUNTIME),
                metadata=metadata,
            )
        if holdout is not None:
            holdout.to_parquet(Path(path) / HOLDOUT_FILE, index=False)

    return log_model(ctx, run_id, save, name=name, flavor="sklearn", metadata=metadata)


@contextlib.contextmanager
def _pins_need_no_environment_scan() -> Iterator[None]:
    """While saving a model with :func:`pinned_requirements`, skip MLflow's map of every
    installed distribution to its modules.

    MLflow checks explicit requirements against the environment, and to do so first maps all
    installed distributions to their modules (``packages_distributions()``): ~1.2 s in every
    new process that logs a model — every flow run a worker starts. The map only serves to find
    a version the distribution metadata cannot give; pins made from that metadata cannot miss
    it. The map is left empty for the duration of the save (if nothing built it yet), then
    unset again, so any later use in the process (requirement inference) builds it as usual.
    """
    from mlflow.utils import requirements_utils

    if getattr(requirements_utils, "_MODULES_TO_PACKAGES", False) is not None:
        yield  # already built (or MLflow changed): nothing to skip
        return
    requirements_utils._MODULES_TO_PACKAGES = {}  # type: ignore[assignment]
    try:
        yield
    finally:
        requirements_utils._MODULES_TO_PACKAGES = None
        requirements_utils._PACKAGES_TO_MODULES = None


def _trusted_types(model: Any) -> list[str] | None:
    """Types skops should trust on load beyond its defaults: the model's own numpy dtypes."""
    try:
        skops_io = import_skops()
        return skops_io.get_untrusted_types(data=skops_io.dumps(model)) or None
    except Exception:
        return None


HOLDOUT_FILE = "holdout.parquet"  # beside the model: rows it never saw, to verify a fast path


# Optional packages scikit-learn's module walk would import if installed, none of which a
# scikit-learn model needs: torch and dask (array API adapters), pytest (test helpers).
_WALK_SKIPS = ("torch", "dask", "cupy", "jax", "pytest", "_pytest")


def import_skops() -> Any:
    """``skops.io``, imported in a fraction of the time and without torch, dask or pytest.

    Importing skops lists scikit-learn's estimators (its default trusted types) by importing
    every scikit-learn module: ~1.2 s, and some of those modules import whatever optional
    package is installed — ``sklearn.externals.array_api_compat.torch`` imports torch (+2 s and
    ~260 MiB in every process that saves or loads a model, model server workers included).

    - Those optional packages, when not already loaded, are unimportable for the duration of
      this one import (the walk skips what fails to import); afterwards they import as usual.
    - The list is the same for a given scikit-learn and skops: the first import computes it and
      keeps the names in ``$MODELOPS_HOME/cache/``; later imports hand skops those names
      instead of importing every module. The trusted types are the same names either way.
    """
    import sys

    if "skops.io" in sys.modules:
        import skops.io

        return skops.io
    cache = _estimator_names_cache()
    names = _read_names(cache)
    with _without(_WALK_SKIPS), _listing_estimators(names):
        import skops.io
    if names is None and cache is not None:
        from skops.io import _trusted_types

        _write_names(cache, list(_trusted_types.SKLEARN_ESTIMATOR_TYPE_NAMES))
    return skops.io


def _estimator_names_cache() -> Path | None:
    try:
        from modelops.settings import get_settings

        tag = f"sklearn-{version('scikit-learn')}-skops-{version('skops')}"
        return get_settings().home_dir / "cache" / f"skops-trusted-{tag}.json"
    except Exception:  # no settings, no metadata: import the slow way
        return None


def _read_names(path: Path | None) -> list[str] | None:
    import json

    if path is None or not path.is_file():
        return None
    try:
        names = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(names, list) and names and all(isinstance(n, str) for n in names)
    return names if ok else None


def _write_names(path: Path, names: list[str]) -> None:
    import contextlib
    import json
    import os

    with contextlib.suppress(OSError):  # a read-only home only costs the next import time
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        partial.write_text(json.dumps(names))
        os.replace(partial, path)


def _without(packages: tuple[str, ...]) -> Any:
    """A context in which ``packages`` (those not already imported) cannot be imported."""
    import contextlib
    import importlib.abc
    import sys

    skipped = tuple(name for name in packages if name not in sys.modules)

    class Skip(importlib.abc.MetaPathFinder):
        def find_spec(self, name: str, path: Any, target: Any = None) -> None:
            if name.split(".", 1)[0] in skipped:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    @contextlib.contextmanager
    def block() -> Any:
        finder = Skip()
        sys.meta_path.insert(0, finder)
        try:
            yield
        finally:
            sys.meta_path.remove(finder)

    return block()


def _listing_estimators(names: list[str] | None) -> Any:
    """A context in which ``sklearn.utils.all_estimators`` lists ``names`` without importing
    their modules (skops only takes each class's module and name)."""
    import contextlib

    @contextlib.contextmanager
    def listing() -> Any:
        if names is None:
            yield
            return
        import sklearn.utils

        real = sklearn.utils.all_estimators
        stand_ins = []
        for name in names:
            module, _, cls = name.rpartition(".")
            stand_ins.append((cls, type(cls, (), {"__module__": module})))
        sklearn.utils.all_estimators = lambda *a, **k: list(stand_ins)
        try:
            yield
        finally:
            sklearn.utils.all_estimators = real

    return listing()


def store_uris(client: MlflowClient) -> tuple[str, str]:
    """The tracking and registry URIs an ``MlflowClient`` was made with."""
    tracking_uri = str(client.tracking_uri)
    return tracking_uri, str(client._registry_uri or tracking_uri)


def version_location(client: MlflowClient, name: str, ref: str | int) -> str:
    """Where a registered version's files are (an artifact URI), by number, alias or "latest".

    Resolved through ``client``: MLflow's own ``models:/name/N`` resolution ignores the URIs it
    is given and uses the process-wide registry URI.
    """
    from modelops.registry.versions import resolve_version

    version = resolve_version(client, name, ref)
    return str(client.get_model_version_download_uri(name, str(version.version)))


def download_version(
    client: MlflowClient, name: str, ref: str | int, path: str = "", dst: str | None = None
) -> Path:
    """Download a registered version (or one file of it, ``path``) to a local folder."""
    import mlflow.artifacts

    tracking_uri, registry_uri = store_uris(client)
    location = version_location(client, name, ref).rstrip("/")
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"{location}/{path}" if path else location,
        dst_path=dst,
        tracking_uri=tracking_uri,
        registry_uri=registry_uri,
    )
    return Path(local)


def read_mlmodel(
    client: MlflowClient, name: str, ref: str | int, with_example: bool = False
) -> tuple[Model, Any]:
    """A version's ``MLmodel`` description and (``with_example``) its input example, without
    downloading the weights; nothing is left on disk."""
    import tempfile

    from mlflow.models import Model

    with tempfile.TemporaryDirectory(prefix="modelops-mlmodel-") as folder:
        model = Model.load(str(download_version(client, name, ref, "MLmodel", dst=folder)))
        info = model.saved_input_example_info
        if not (with_example and info):
            return model, None
        download_version(client, name, ref, info["artifact_path"], dst=folder)
        return model, model.load_input_example(folder)


def load_pyfunc(client: MlflowClient, name: str, ref: str | int) -> Any:
    """A registered version as an MLflow pyfunc (schema enforcement, any flavour)."""
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(str(download_version(client, name, ref)))


def load_sklearn(client: MlflowClient, name: str, ref: str | int) -> tuple[Any, Model]:
    """A registered scikit-learn version (for probabilities) and its MLmodel description."""
    import mlflow.sklearn
    from mlflow.models import Model

    local = download_version(client, name, ref)
    return mlflow.sklearn.load_model(str(local)), Model.load(str(local / "MLmodel"))
