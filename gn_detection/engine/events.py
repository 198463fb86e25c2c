"""Training metrics: JSON lines, TensorBoard, and a progress line with the ETA."""
import datetime
import json
import logging
import os
import statistics
from collections import deque
from typing import Dict, Optional

from ..utils.file_io import atomic_write

__all__ = ["METRICS_FILE", "MetricsWriter"]

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"


class MetricsWriter:
    """Writes scalars to ``<output_dir>/metrics.json`` (one JSON object per line) and to
    TensorBoard event files in ``output_dir``, and logs a progress line.

    Args:
        output_dir: where the files go; None writes no files (other processes than the main one).
        max_iter: the last iteration, for the ETA.
        start_iter: where a resumed run continues; what a killed run recorded from there on is
            dropped from both files, since it is recorded again.
    """

    def __init__(self, output_dir: Optional[str], *, max_iter: int, start_iter: int = 0, window: int = 20):
        self.max_iter = max_iter
        self.iteration_times = deque(maxlen=window)
        self.json_path = None
        self.tensorboard = None
        if output_dir is not None:
            os.makedirs(output_dir, exist_ok=True)
            self.json_path = os.path.join(output_dir, METRICS_FILE)
            _drop_records_from(self.json_path, start_iter)
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional; metrics.json always has everything
                logger.warning("tensorboard is not installed; metrics go to metrics.json only")
            else:
                self.tensorboard = SummaryWriter(output_dir, purge_step=start_iter or None)

    def add_iteration_time(self, seconds: float) -> None:
        self.iteration_times.append(seconds)

    def eta_seconds(self, iteration: int) -> Optional[float]:
        if not self.iteration_times:
            return None
        return statistics.median(self.iteration_times) * (self.max_iter - iteration - 1)

    def write(self, iteration: int, scalars: Dict[str, float]) -> None:
        """Record ``scalars`` for ``iteration`` (0-based, the one just finished)."""
        if self.json_path is not None:
            with open(self.json_path, "a") as f:
                f.write(json.dumps(dict(iteration=iteration, **scalars), sort_keys=True) + "\n")
        if self.tensorboard is not None:
            for key, value in scalars.items():
                self.tensorboard.add_scalar(key, value, iteration)

    def log_progress(self, iteration: int, losses: Dict[str, float], lr: float, data_time: float) -> None:
        eta = self.eta_seconds(iteration)
        speed = statistics.median(self.iteration_times) if self.iteration_times else float("nan")
        logger.info(
            "iter %d/%d  total_loss %.3f (%s)  lr %.5g  %.3f s/it  data %.3f s  eta %s",
            iteration + 1,
            self.max_iter,
            sum(losses.values()),
            " ".join(f"{k.replace('loss_', '')} {v:.3f}" for k, v in losses.items()),
            lr,
            speed,
            data_time,
            "?" if eta is None else str(datetime.timedelta(seconds=int(eta))),
        )

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


def _drop_records_from(json_path: str, start_iter: int) -> None:
    if not os.path.isfile(json_path):
        return
    with open(json_path) as f:
        lines = [line for line in f if line.strip()]
    kept = [line for line in lines if json.loads(line)["iteration"] < start_iter]
    if len(kept) < len(lines):
        atomic_write(json_path, lambda f: f.write("".join(kept).encode("utf-8")))
        logger.info("%s: dropped %d records from iteration %d on, to be written again", json_path, len(lines) - len(kept), start_iter)
