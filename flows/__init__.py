"""Prefect flows: one module per flow; a flow body only wires tasks together."""

from modelops.orchestration.engine import apply_engine_settings

apply_engine_settings()  # before any flow runs in this process: no heartbeat rounding
