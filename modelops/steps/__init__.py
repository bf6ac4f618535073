"""Each lifecycle step as one function that does the work and logs it into MLflow.

:mod:`~modelops.steps.train` (load, validate, split, fit, evaluate, gate, register, stage),
:mod:`~modelops.steps.promote` (candidate, champion/challenger, promote, rollback),
:mod:`~modelops.steps.serve` (resolve, deploy, record, batch score) and
:mod:`~modelops.steps.text` (text classifiers). ``tasks/`` wraps each step in a Prefect task;
the Python API calls them directly. No Prefect in here.
"""
