"""``tgsip bench``: benchmarks that print one JSON object each."""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declares ``tgsip bench {media,sip} [--json] [--seconds S]``."""
    parser.add_argument("target", choices=["media", "sip"], help="what to measure")
    parser.add_argument("--json", action="store_true", help="print only the JSON object")
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="measurement time per stage (default: per target)",
    )


def run(args: argparse.Namespace) -> int:
    """Runs the chosen benchmark and prints its result."""
    if args.target == "sip":
        from tgsip.bench.sip import run as run_bench
    else:
        from tgsip.bench.media import run as run_bench

    result = run_bench(seconds=args.seconds, quiet=args.json)
    json.dump(result, sys.stdout, indent=None if args.json else 2)
    sys.stdout.write("\n")
    return 0
