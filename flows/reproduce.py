"""The `reproduce` flow: rebuild a registered version from what was recorded when it was trained,
and say whether it comes out the same."""

from __future__ import annotations

from typing import Annotated

from prefect import flow
from pydantic import Field

from modelops.params import ModelName
from modelops.training_key import REPRODUCES_TAG
from modelops.types import Reproduction
from tasks.registry import register_model
from tasks.reproduce import compare_rebuild, read_recorded_inputs, rebuild_version
from tasks.tracking import flow_run


@flow(name="reproduce", log_prints=True)
def reproduce(
    model_name: ModelName = "lead-scoring",
    version: str = "production",
    data_path: str | None = None,
    register_rebuild: bool = False,
    tolerance: Annotated[float, Field(ge=0)] | None = None,
) -> Reproduction:
    """Retrain a version with its recorded data, parameters and seed; compare the rebuild.

    Args:
        model_name: the registered model.
        version: a version number or alias.
        data_path: where the training data is now (default: where it was read); refused
            unless its content digest is the recorded one.
        register_rebuild: register the rebuild as a new version tagged modelops.reproduces=<version>
            (default: nothing is registered).
        tolerance: the largest absolute difference of a metric or probability that still
            counts as the same model (default 1e-9 for tabular models, 0.02 for fine-tuned
            text models, whose CPU float sums are not bit-stable).
    """
    params = {"model_name": model_name, "version": version, "data_path": data_path}
    with flow_run("reproduce", model_name, params) as ctx:
        recorded = read_recorded_inputs(ctx, model_name, version)
        rebuild = rebuild_version(ctx, recorded, data_path, register_rebuild)
        result = compare_rebuild(ctx, recorded, rebuild, tolerance)
        if register_rebuild and rebuild.logged is not None:
            registered = register_model(
                ctx,
                model_name,
                rebuild.logged,
                tags={REPRODUCES_TAG: recorded.version},
                key=rebuild.key,
            )
            result = result.model_copy(update={"registered_version": registered.version})
    return result


if __name__ == "__main__":
    import sys

    from modelops.cli import run

    run(["reproduce", *sys.argv[1:]])
