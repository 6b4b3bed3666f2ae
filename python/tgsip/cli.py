"""The ``tgsip`` command: ``tgsip run``, ``tgsip bench``, ``tgsip sandbox``, ``tgsip demo``.

Each sub-command lives in its own module with a light top level (``add_arguments`` and ``run``);
heavy dependencies are imported inside ``run`` so ``tgsip --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from tgsip import __version__

#: Sub-command name -> (module, function, one-line help). The function takes the parsed
#: arguments and returns the exit status.
_COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("tgsip.gateway", "Run the gateway (embedded defaults, one process)."),
    "bench": ("tgsip.bench", "Run a benchmark and print one JSON object."),
    "sandbox": ("tgsip.sandbox.command", "Run the local Telegram sandbox standalone."),
    "demo": ("tgsip.demo", "Watch the gateway work offline against the sandbox, narrated."),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(prog="tgsip", description="Telegram to SIP voice gateway.")
    parser.add_argument("--version", action="version", version=f"tgsip {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in _COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        mod = importlib.import_module(module)
        add_arguments: Callable[[argparse.ArgumentParser], None] = mod.add_arguments
        add_arguments(sub_parser)
        sub_parser.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tgsip`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    mod = importlib.import_module(args._module)
    run: Callable[[argparse.Namespace], int] = mod.run
    return run(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
