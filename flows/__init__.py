"""Prefect flows: one module per flow; a flow body only wires tasks together."""
