"""The ``gn-detect`` subcommands, beside the library: one module each, holding its ``HELP``,
its arguments (``add_arguments``) and its handler (``run``). Nothing in the core imports this
package. A command's module is imported only when that command runs (or ``--help`` lists them
all), so that ``predict`` on an ONNX model works where torch is not installed."""
import importlib
from types import ModuleType

__all__ = ["COMMANDS", "load_command"]

# name -> module, in the order ``gn-detect --help`` lists them
COMMANDS = {
    "build": "build",
    "train": "train",
    "visualize": "visualize",
    "convert": "convert",
    "export": "export",
    "predict": "predict",
    "prepare": "prepare",
    "pixel-stats": "pixel_stats",
    "compare-norms": "compare_norms",
    "study": "study",
    "study-classification": "study_classification",
    "benchmark": "benchmark",
    "benchmark-eval": "benchmark_eval",
    "benchmark-data": "benchmark_data",
}


def load_command(name: str) -> ModuleType:
    return importlib.import_module(f".{COMMANDS[name]}", __name__)
