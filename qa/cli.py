"""The `qa` command line: a thin layer over the library.

Each subcommand is one small function pair: ``_add_<name>(sub)`` declares its
arguments, ``_cmd_<name>(args)`` runs it and returns an exit code. Domain
errors (qa.errors.QAError) become a one-line message on stderr and exit code
2; environment variables are read here and nowhere in the library.
"""

from __future__ import annotations

import argparse
import sys

from qa.errors import QAError

EXIT_OK = 0
EXIT_ERROR = 2


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qa",
        description="Question-answering search over folders of news articles.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


# Subcommands register themselves here (see the module docstring).
_SUBCOMMANDS: list = []


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or EXIT_OK)
    except QAError as exc:
        print(f"qa {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"qa {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
