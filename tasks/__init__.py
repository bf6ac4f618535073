"""Prefect tasks by lifecycle stage: thin wrappers over ``modelops`` that log into MLflow."""
