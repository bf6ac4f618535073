"""Kubernetes manifest templates and work-pool job templates (data, not code).

This folder is shipped inside the installed package as ``modelops.templates`` (see
``[tool.setuptools]`` in pyproject.toml), so the code finds the templates in a wheel install
exactly as in a checkout; this file only makes the folder importable for that mapping.
"""
