"""The Prefect glue that is not a task: how flows run here, the warm worker, the API's flow runs.

Part of the Prefect layer (with ``tasks/`` and ``flows/``): the core never imports it; the
entry points (the command line, the operator API) do.
"""
