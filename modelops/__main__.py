"""``python -m modelops``."""

import sys

from modelops.cli import main

sys.exit(main())
