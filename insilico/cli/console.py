"""The terminal side of the command line: logging through rich, and the bug log.

The library logs through `logging` under the ``insilico`` logger; the command line shows
those messages on stderr with a rich handler (``· message``), keeps the chatter of the
libraries it drives at WARNING, and writes the traceback of an unexpected error to a log
file whose path it prints.
"""

from __future__ import annotations

import logging
import os
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

#: third-party loggers that narrate their internals at INFO (stores created, schema
#: migrations, registry notices, GX docs sites, worker shutdowns): shown from WARNING
QUIET = ("mlflow", "alembic", "great_expectations", "distributed", "pymc", "pytensor", "numba", "matplotlib")


def console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def setup_logging(con: Console, *, debug: bool = False) -> None:
    """Route the ``insilico`` logger to the terminal; quiet the libraries' own loggers."""
    from rich.logging import RichHandler

    handler = RichHandler(console=con, show_time=False, show_level=False, show_path=False, markup=False,
                          rich_tracebacks=debug)
    handler.setFormatter(logging.Formatter("· %(message)s"))
    root = logging.getLogger("insilico")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    root.propagate = False
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    # GX pins this module's logger to INFO on import, below its parent's level
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)


def bug_log(err: BaseException, argv: list[str]) -> Path:
    """Write the traceback of an unexpected error to a log file; return its path."""
    folder = Path(os.environ.get("INSILICO_LOG_DIR") or tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = folder / f"insilico-error-{stamp}-{os.getpid()}.log"
    text = "".join(traceback.format_exception(err))
    path.write_text(f"insilico {' '.join(argv)}\n\n{text}")
    return path
