"""Entry point of the ``idresnet`` command: one sub-command per module.

Each sub-command module defines ``add_parser(subparsers)`` and ``run(args) -> int``.
Errors the user can cause (:class:`idresnet.errors.UsageError`, a missing file) and
refusals of the file system (permission, full disk) are printed as one line, with exit
status 2 and no traceback; Ctrl-C is 130. Output read by a command that stops early
(``idresnet reproduce --list | head -2``) ends quietly, with status 141 (128 + SIGPIPE,
as a Unix tool killed by the closed pipe reports).
"""

from __future__ import annotations

import importlib
import os
import select
import sys

BROKEN_PIPE = 141  # 128 + SIGPIPE

# sub-command name -> module under idresnet.cli
COMMANDS = {
    "models": "models",
    "train": "train",
    "eval": "evaluate",
    "export": "export",
    "reproduce": "reproduce",
    "plot": "plot",
    "runs": "runs",
    "analyze": "analyze",
    "bench": "bench",
    "convert": "convert",
    "predict": "predict",
}


def build_parser():
    from idresnet import __version__
    from idresnet.cli.parsing import StrictParser

    parser = StrictParser(
        prog="idresnet",
        description="Identity-mapping residual networks (He et al., 2016).",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"idresnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=StrictParser)
    sub.required = True
    for name, module in COMMANDS.items():
        importlib.import_module(f"idresnet.cli.{module}").add_parser(sub, name)
    return parser


def main(argv: list[str] | None = None) -> int:
    from idresnet.errors import UsageError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not after main has returned
        return code
    except BrokenPipeError:
        if not _stdout_closed():
            raise
        _silence_stdout()
        return BROKEN_PIPE
    except UsageError as exc:
        print(f"idresnet {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"idresnet {args.command}: error: no such file: {exc.filename or exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the file system said no: permission, full disk, not a folder
        where = f": {exc.filename}" if exc.filename else ""
        print(f"idresnet {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"idresnet {args.command}: interrupted", file=sys.stderr)
        return 130


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (a BrokenPipeError from elsewhere, a
    worker's pipe, is not the user's early stop)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), no file descriptor
        return True


def _silence_stdout() -> None:
    """Point stdout at the null device, so that Python's flush at exit does not raise again
    (the Python documentation's recipe for SIGPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
