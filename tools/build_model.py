#!/usr/bin/env python
"""Same as ``gn-detect build``: build a config's model and run one forward pass."""
import sys

from gn_detection.cli import main

if __name__ == "__main__":
    sys.exit(main(["build", *sys.argv[1:]]))
