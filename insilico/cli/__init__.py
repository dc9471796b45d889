"""The ``insilico`` command line. No logic of its own: it parses, calls a stage, and reports.

A user mistake (a `insilico.common.errors.UserError`: bad spec, bad data, missing file)
prints one readable paragraph and exits with code 2. Anything else is a bug: exit 1, a
short message, and the traceback in a log file whose path is printed (``--debug``,
accepted anywhere on the line, shows it instead). A closed output pipe (``insilico oc …
| head``) ends the command quietly.
"""

from __future__ import annotations

import os
import sys
import traceback

from insilico.common.errors import UserError

from .console import bug_log, console, setup_logging
from .parser import build_parser

USER_ERROR, BUG = 2, 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("INSILICO_DEBUG") == "1"
    args = build_parser().parse_args([a for a in argv if a != "--debug"])
    con = console()
    setup_logging(con, debug=debug)
    try:
        code = args.func(args, con)
        sys.stdout.flush()  # here, not at exit: a reader that went away is handled below
        return code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away: send what is left of stdout nowhere, and stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except UserError as err:
        if debug:
            traceback.print_exc()
        report = getattr(err, "result", None)
        text = report.report() if report is not None else str(err)
        print(f"insilico {args.command}: error: {text}", file=sys.stderr)
        if report is not None and args.command == "fit":
            print("Nothing was fitted; the MLflow run is marked FAILED with the validation result attached.",
                  file=sys.stderr)
        return USER_ERROR
    except Exception as err:  # noqa: BLE001 - every other exception is a bug, reported as one
        path = bug_log(err, argv)
        if debug:
            traceback.print_exc()
        print(f"insilico {args.command}: internal error: {type(err).__name__}: {err}\n"
              f"This is a bug in insilico-trials, not a problem with your input. The traceback is in {path}; "
              "please include it when you report the bug (--debug shows it here).", file=sys.stderr)
        return BUG


__all__ = ["main"]
