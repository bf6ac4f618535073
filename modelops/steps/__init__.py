"""Each lifecycle step as one function that does the work and logs it into MLflow.

One module per stage, named like its twin in ``tasks/`` (which wraps each step in a Prefect
task): :mod:`~modelops.steps.data` (load, validate), :mod:`~modelops.steps.training` (split,
fit), :mod:`~modelops.steps.evaluation` (held-out metrics, cross-validation, the gate),
:mod:`~modelops.steps.registry` (register, reuse an earlier attempt, set an alias),
:mod:`~modelops.steps.promotion` (candidate, champion/challenger, promote, rollback),
:mod:`~modelops.steps.serving` (resolve, deploy, record, batch score),
:mod:`~modelops.steps.monitoring` (drift and decay checks, their report),
:mod:`~modelops.steps.tuning` (the search's record), :mod:`~modelops.steps.text` (text
classifiers) and :mod:`~modelops.steps.summary` (the lifecycle summary). The Python API
(:mod:`modelops.library`) calls the training spine's steps in the flows' order. No Prefect in
here.
"""
