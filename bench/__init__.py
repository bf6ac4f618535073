"""Benchmarks: each measures a bare baseline in the same run."""
