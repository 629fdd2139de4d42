"""`python -m indexer` runs the installed `semsearch` command, so both list the same commands.

The full command group is composed in search_api.cli (the composition root); the indexer does
not import the layer above it, so it finds that group through the console-script entry point.
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

SCRIPT = "semsearch"


def run(script: str = SCRIPT) -> None:
    """Run the console script `script` with this process's arguments.

    Args:
        script: the console-script name to look up in the installed package metadata.

    Raises:
        SystemExit: with status 1 and a message saying what to install, if it is not installed.
    """
    found = entry_points(group="console_scripts", name=script)
    if not found:
        sys.exit(f"error: the '{script}' command is not installed, so `python -m indexer` cannot "
                 "find it: install the project (`pip install -e .` or `make install`)")
    main = next(iter(found)).load()
    main()


if __name__ == "__main__":
    run()
