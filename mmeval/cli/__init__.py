"""Command line: ``mmeval run | report | watch | compare | score-mmad | build | data | human | models | tasks |
boosts | experts``.

Each command lives in a module of this package with ``add_parser(subparsers)`` (which sets the
command's handler as ``func``); adding a command is one module plus one line in :data:`COMMANDS`.

Exit codes: 0 ok, 2 bad input (data, flags, files; the message names the culprit), 1 internal error,
3 an incomplete run (``mmeval run``: questions ended in an error or were never asked; the report covers the
answered ones, a rerun finishes it), 130 interrupted (predictions so far are kept; rerun the same command to resume),
141 the reader of the output went away (``mmeval experts | head``), as a shell reports a broken pipe.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from mmeval import __version__, heap
from mmeval.errors import AdapterError, InputError

EXIT_OK, EXIT_INTERNAL, EXIT_INPUT, EXIT_INCOMPLETE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_BROKEN_PIPE = 141

#: the modules of this package that add commands, in the order --help lists them
COMMANDS = ("run", "report", "watch", "build", "data", "human", "catalog")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmeval",
        description="Evaluate multimodal LLMs as industrial quality inspectors on MMAD-format benchmarks.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'mmeval COMMAND --help' for each command's flags.")
    parser.add_argument("--version", action="version", version=f"mmeval {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"mmeval.cli.{name}").add_parser(sub)
    return parser


def entry(argv: list[str] | None = None) -> int:
    """The ``mmeval`` command (its console script and ``python -m mmeval``): :func:`main`, and then the process
    ends without the interpreter's collections over everything left (:func:`mmeval.heap.freeze_for_exit`)."""
    try:
        code = main(argv)
        sys.stdout.flush()  # a listing sits in the buffer until here: its broken pipe is raised here, not at exit
        return code
    except BrokenPipeError:  # the reader went away (`mmeval experts | head`): stop quietly, as other tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush of stdout would fail again
        return EXIT_BROKEN_PIPE
    finally:
        heap.freeze_for_exit()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (InputError, AdapterError) as exc:
        print(f"mmeval: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("mmeval: interrupted; predictions so far are saved, rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
