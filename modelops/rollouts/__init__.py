"""Rollouts judged on live traffic: the analysis of a step (no Prefect here)."""
