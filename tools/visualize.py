#!/usr/bin/env python
"""Same as ``gn-detect visualize``: draw detections or ground truth as PNGs."""
import sys

from gn_detection.cli import main

if __name__ == "__main__":
    sys.exit(main(["visualize", *sys.argv[1:]]))
