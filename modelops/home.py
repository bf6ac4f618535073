"""Where the project keeps its files on this machine (``MODELOPS_HOME``), read without the
settings machinery: the command line needs it before anything heavy is imported (a warm start
is decided in the first tenth of a second). :class:`modelops.settings.Settings` reads the same
variable with the same default."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

HOME_ENV = "MODELOPS_HOME"
DEFAULT_HOME = ".modelops"  # relative: under the working directory


def home_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``MODELOPS_HOME`` (empty means the default) as an absolute path."""
    value = (os.environ if environ is None else environ).get(HOME_ENV) or DEFAULT_HOME
    return resolve(Path(value))


def resolve(home: Path) -> Path:
    """A home folder as an absolute path (``~`` expanded, relative to the working directory)."""
    return home.expanduser().resolve()
