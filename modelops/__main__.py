"""``python -m modelops``."""

from modelops.cli import run

run()
