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
#: migrations, registry notices, GX docs sites, worker shutdowns) and set their own level
QUIET = ("mlflow", "alembic", "great_expectations", "distributed", "pymc", "pytensor", "numba", "matplotlib")


def console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


class _Terminal(logging.Filter):
    """Our messages from INFO, the libraries' from WARNING; each written as one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        ours = record.name == "insilico" or record.name.startswith("insilico.")
        if not ours and record.levelno < logging.WARNING:
            return False
        record.msg_line = record.getMessage() if ours else f"{record.levelname.lower()} ({record.name}): " \
            f"{record.getMessage()}"
        return True


def setup_logging(con: Console, *, debug: bool = False) -> None:
    """Send log records to the terminal: ours from INFO (DEBUG with ``--debug``), the
    libraries' from WARNING. The handler sits on the root logger, so libraries that
    configure their own logging only when nothing is configured (PyMC) leave it alone."""
    from rich.logging import RichHandler

    handler = RichHandler(console=con, show_time=False, show_level=False, show_path=False, markup=False,
                          rich_tracebacks=debug)
    handler.setFormatter(logging.Formatter("· %(msg_line)s"))
    handler.addFilter(_Terminal())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    # GX pins this module's logger to INFO on import, below its parent's level
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
    # MLflow configures its own handler when imported (set before that: the commands import it lazily);
    # its registry notices about pickled models and signatures are not the user's concern
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")


def bug_log(err: BaseException, argv: list[str]) -> Path:
    """Write the traceback of an unexpected error to a log file; return its path."""
    folder = Path(os.environ.get("INSILICO_LOG_DIR") or tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = folder / f"insilico-error-{stamp}-{os.getpid()}.log"
    text = "".join(traceback.format_exception(err))
    path.write_text(f"insilico {' '.join(argv)}\n\n{text}")
    return path
