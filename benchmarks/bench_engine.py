#!/usr/bin/env python3
"""Same as ``taptr bench engine``: see `taptr bench engine --help` (options are shared with the CLI)."""

import sys

from taptr_ros.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "engine", *sys.argv[1:]]))
