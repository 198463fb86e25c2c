"""Experiments over many trainings, beside the library: the GN paper's comparisons of norms, batch
sizes and group settings, for classification, video and detection, run by one engine
(``engine``: resumable sweeps, tables beside the paper's numbers, plots). Nothing in the core
imports this package."""
