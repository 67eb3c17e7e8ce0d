"""``taptr bag make|eval|play``: rosbag2 bags in, tracking reports out (no ROS install needed).

One module per action (`make`, `eval`, `play`), each with ``register(commands)`` and its
``run``. Every bag problem is a :class:`taptr_ros.bags.errors.BagError` whose message names the
fix; it is printed on one line and the command exits with 1 (2 for bad usage).
"""

from __future__ import annotations

import argparse

from taptr_ros.cli.bag import eval as eval_command
from taptr_ros.cli.bag import make as make_command
from taptr_ros.cli.bag import play as play_command


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``bag`` and its ``make``, ``eval`` and ``play`` subcommands."""
    parser = subparsers.add_parser("bag", help="rosbag2 tools: make a bag, evaluate on it, replay it live")
    commands = parser.add_subparsers(dest="bag_command", required=True, metavar="ACTION")
    make_command.register(commands)
    eval_command.register(commands)
    play_command.register(commands)
