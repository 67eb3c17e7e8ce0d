"""What the ``taptr bag`` actions share: the engine options and the one-line failure."""

from __future__ import annotations

import argparse
import sys


def engine_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --checkpoint and --device (the model the action runs)."""
    parser.add_argument(
        "--checkpoint",
        default="default",
        help="TAPTR checkpoint path, or 'default' for the shipped model (default: default)",
    )
    parser.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda, cuda:1, ...")


def fail(command: str, error: Exception, code: int = 1) -> int:
    """Print ``taptr bag COMMAND: error`` on stderr; returns the exit code."""
    print(f"taptr bag {command}: {error}", file=sys.stderr)
    return code
