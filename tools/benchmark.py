#!/usr/bin/env python
"""Same as ``gn-detect benchmark``: time training steps and inference side by side."""
import sys

from gn_detection.cli import main

if __name__ == "__main__":
    sys.exit(main(["benchmark", *sys.argv[1:]]))
