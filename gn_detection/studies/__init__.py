"""Experiments over many trainings, beside the library: the same recipe with other norms and
batch sizes (``norms``). Nothing in the core imports this package."""
