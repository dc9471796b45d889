"""``python -m insilico``: the command line."""

import sys

from insilico.cli import main

if __name__ == "__main__":
    sys.exit(main())
