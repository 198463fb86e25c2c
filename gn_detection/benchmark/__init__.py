"""Measuring speed, beside the library: the training step and inference of configs side by side
with precisions and reference models (``models``, ``references``), and the evaluator's backends
(``evaluator``). Nothing in the core imports this package."""
