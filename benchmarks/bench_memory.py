#!/usr/bin/env python3
"""Same as ``taptr bench memory``: see `taptr bench memory --help` (options are shared with the CLI)."""

import sys

from taptr_ros.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "memory", *sys.argv[1:]]))
