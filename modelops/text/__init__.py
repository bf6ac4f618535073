"""Text classifiers (the ``[text]`` extra): :mod:`~modelops.text.training` validates,
fine-tunes and evaluates; :mod:`~modelops.text.models` logs models and snapshots;
:mod:`~modelops.text.scoring` scores files with telemetry; :mod:`~modelops.text.sample` writes
the bundled sample. Importing this package imports neither torch nor transformers."""
