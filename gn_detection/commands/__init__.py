"""The ``gn-detect`` subcommands, beside the library: one module each, holding its ``HELP``,
its arguments (``add_arguments``) and its handler (``run``). Nothing in the core imports this
package."""
from . import (
    benchmark,
    benchmark_data,
    benchmark_eval,
    build,
    compare_norms,
    convert,
    pixel_stats,
    prepare,
    study,
    study_classification,
    train,
    visualize,
)

__all__ = ["COMMANDS"]

# name -> module, in the order ``gn-detect --help`` lists them
COMMANDS = {
    "build": build,
    "train": train,
    "visualize": visualize,
    "convert": convert,
    "prepare": prepare,
    "pixel-stats": pixel_stats,
    "compare-norms": compare_norms,
    "study": study,
    "study-classification": study_classification,
    "benchmark": benchmark,
    "benchmark-eval": benchmark_eval,
    "benchmark-data": benchmark_data,
}
