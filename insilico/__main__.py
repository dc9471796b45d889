"""``python -m insilico``: the command line."""

import sys

from insilico.cli import main

sys.exit(main())
