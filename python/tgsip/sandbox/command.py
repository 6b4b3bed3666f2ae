"""``tgsip sandbox``: the local Telegram stand-in, standalone (same options as
``python -m tgsip.sandbox``)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Passes every following argument to the sandbox's own parser (``tgsip sandbox -- --help``
    lists them)."""
    parser.add_argument("sandbox_args", nargs=argparse.REMAINDER, help="sandbox options")


def run(args: argparse.Namespace) -> int:
    """Runs the sandbox until interrupted."""
    from tgsip.sandbox.cli import main

    argv = [a for a in args.sandbox_args if a != "--"]
    return main(argv)
