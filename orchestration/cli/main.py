"""The retentext command: simulate a shop, run the pipeline in process, send, measure, demo.

The settings are read from the environment once, here, and handed to the command with the
parsed arguments."""

from __future__ import annotations

import argparse
import sys

from orchestration.cli import demo, experiments, importing, ingest, send
from orchestration.cli.common import error
from warehouse.settings import Settings

COMMAND_GROUPS = (ingest, importing, send, experiments, demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="retentext", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args, Settings.from_env())
    except ValueError as exc:
        error(str(exc))
        return 2


if __name__ == "__main__":
    sys.exit(main())
