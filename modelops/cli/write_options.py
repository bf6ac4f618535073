"""``python -m modelops.cli.write_options``: store every flow command's options (run it after
changing a flow's parameters; ``tests/unit/test_cli.py`` fails until it is run)."""

from modelops.cli.commands import FLOW_COMMANDS
from modelops.cli.options import STORED_OPTIONS, write_stored_options

if __name__ == "__main__":
    write_stored_options(FLOW_COMMANDS)
    print(f"wrote {STORED_OPTIONS}")
