"""The ``taptr`` command line: one subcommand per module of this package.

Each module ``taptr_ros/cli/<name>.py`` defines ``register(subparsers)``, which adds its
subparser and sets ``func`` (called with the parsed namespace, returning an exit code).
Argument parsing lives only here, never below the CLI.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys


def build_parser() -> argparse.ArgumentParser:
    """Parser with every subcommand module of this package registered."""
    parser = argparse.ArgumentParser(prog="taptr", description="TAPTRv2 point tracking tools")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``taptr`` console script; returns the process exit code."""
    args = build_parser().parse_args(argv)
    code = args.func(args)
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
