#!/usr/bin/env python3
"""Same as ``taptr bench node``: see `taptr bench node --help` (options are shared with the CLI)."""

import sys

from taptr_ros.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "node", *sys.argv[1:]]))
