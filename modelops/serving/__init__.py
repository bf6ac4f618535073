"""Serving model versions: :mod:`~modelops.serving.scoring` (requests, answers, batch files)
and :mod:`~modelops.serving.local` (a server process on this machine)."""
