"""The seed-compatible registry API, kept importable from its first home.

Prefer ``from modelops import ModelStage, promote_model, ...``; this module re-exports the same
objects from :mod:`modelops.registry.stages`.
"""

from __future__ import annotations

from modelops.registry.stages import (
    ModelStage,
    get_model_metadata,
    load_production_model,
    promote_model,
    stage_of,
)

__all__ = ["ModelStage", "get_model_metadata", "load_production_model", "promote_model", "stage_of"]
