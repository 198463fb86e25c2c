"""The iteration loop: one global batch, one optimizer step, per iteration."""
import contextlib
import logging
import time
from typing import Callable, Dict, Iterable, Optional

import torch
from torch import nn

from ..checkpoint import Checkpointer
from ..utils import comm
from .events import MetricsWriter

__all__ = ["Trainer"]

logger = logging.getLogger(__name__)


class Trainer:
    """Trains ``model`` from ``start_iter`` up to ``max_iter``.

    Each iteration takes this process's share of a global batch, runs the forward pass (under
    autocast when ``amp_dtype`` is set), stops on a non-finite loss, steps the optimizer and the
    LR schedule, and every so often logs, checkpoints and evaluates. Under
    DistributedDataParallel the gradients are averaged over processes.

    Args:
        model: returns a dict of losses from (images, targets) in training mode.
        optimizer, scheduler: stepped once per iteration.
        data_loader: endless; yields lists of mapper dicts with ``image`` and ``target``.
        checkpointer: saves ``model_<iter>`` every ``checkpoint_period`` and ``model_final``.
        metrics: receives losses, learning rate and timings.
        evaluate: called every ``eval_period`` iterations and at the end; returns metrics.
        clip_gradients: applied to the parameters between backward and step, or None.
        grad_scaler: for float16 autocast on CUDA, or None.
    """

    def __init__(
        self,
        *,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler,
        data_loader: Iterable,
        checkpointer: Checkpointer,
        metrics: MetricsWriter,
        max_iter: int,
        checkpoint_period: int,
        log_period: int = 20,
        eval_period: int = 0,
        evaluate: Optional[Callable[[], Dict]] = None,
        amp_dtype: Optional[torch.dtype] = None,
        clip_gradients: Optional[Callable[[Iterable[torch.Tensor]], None]] = None,
        grad_scaler: Optional[torch.amp.GradScaler] = None,
    ):
        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.data_loader = data_loader
        self.checkpointer = checkpointer
        self.metrics = metrics
        self.max_iter = max_iter
        self.checkpoint_period = checkpoint_period
        self.log_period = log_period
        self.eval_period = eval_period
        self.evaluate = evaluate
        self.amp_dtype = amp_dtype
        self.clip_gradients = clip_gradients
        self.grad_scaler = grad_scaler
        self.device = next(model.parameters()).device

    def train(self, start_iter: int = 0) -> Dict:
        """Run iterations ``start_iter .. max_iter - 1``; return the last evaluation's results."""
        logger.info("training from iteration %d to %d", start_iter, self.max_iter)
        self.model.train()
        results = {}
        batches = iter(self.data_loader)
        for iteration in range(start_iter, self.max_iter):
            start = time.perf_counter()
            batch = next(batches)
            data_time = time.perf_counter() - start
            losses = self.run_step(iteration, batch)
            self.metrics.add_iteration_time(time.perf_counter() - start)
            next_iter = iteration + 1
            if next_iter % self.log_period == 0 or next_iter == self.max_iter:
                lr = self.optimizer.param_groups[0]["lr"]
                self.metrics.write(iteration, dict(losses, total_loss=sum(losses.values()), lr=lr, data_time=data_time))
                if comm.is_main_process():
                    self.metrics.log_progress(iteration, losses, lr, data_time)
            if next_iter == self.max_iter:
                self.checkpointer.save("model_final", iteration=next_iter)
            elif next_iter % self.checkpoint_period == 0:
                self.checkpointer.save(f"model_{next_iter:07d}", iteration=next_iter)
            if self.evaluate is not None and (
                next_iter == self.max_iter or (self.eval_period and next_iter % self.eval_period == 0)
            ):
                results = self.evaluate()
                self.model.train()
        return results

    def run_step(self, iteration: int, batch: list) -> Dict[str, float]:
        """One optimizer step on ``batch``; returns the losses as floats."""
        images = [sample["image"].to(self.device, non_blocking=True) for sample in batch]
        targets = [{k: v.to(self.device, non_blocking=True) for k, v in sample["target"].items()} for sample in batch]
        autocast = (
            torch.autocast(self.device.type, dtype=self.amp_dtype)
            if self.amp_dtype is not None
            else contextlib.nullcontext()
        )
        with autocast:
            loss_dict = self.model(images, targets)
        total = sum(loss_dict.values())
        self._stop_if_not_finite(iteration, total, loss_dict)

        self.optimizer.zero_grad(set_to_none=True)
        if self.grad_scaler is not None:
            self.grad_scaler.scale(total).backward()
            self.grad_scaler.unscale_(self.optimizer)
        else:
            total.backward()
        if self.clip_gradients is not None:
            self.clip_gradients(p for p in self.model.parameters() if p.grad is not None)
        if self.grad_scaler is not None:
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        return {k: v.item() for k, v in loss_dict.items()}

    def _stop_if_not_finite(self, iteration: int, total: torch.Tensor, loss_dict: Dict[str, torch.Tensor]) -> None:
        # Every process must take the same decision, or the others would wait for it forever.
        bad = torch.tensor(float(not torch.isfinite(total)), device=self.device)
        if comm.get_world_size() > 1:
            torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX)
        if bad.item():
            losses = ", ".join(f"{k}={v.item():.4g}" for k, v in loss_dict.items())
            kept = self.checkpointer.last_checkpoint() or "none was written yet"
            raise FloatingPointError(
                f"iteration {iteration}: non-finite loss ({losses}); stopping without saving. "
                f"The last good checkpoint is kept: {kept}. Lower SOLVER.BASE_LR, lengthen "
                f"SOLVER.WARMUP_ITERS or enable SOLVER.CLIP_GRADIENTS."
            )
