#!/usr/bin/env python
"""Same as ``gn-detect train``: train and evaluate a config (see ``gn-detect train --help``)."""
import sys

from gn_detection.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
