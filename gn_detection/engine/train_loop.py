"""The iteration loop, as detectron2's SimpleTrainer: one global batch, one optimizer step, per
iteration; ``engine/defaults.py`` builds everything it runs."""
import contextlib
import logging
import time
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import torch
from torch import nn

from ..checkpoint import Checkpointer
from ..utils import comm
from .events import MetricsWriter

__all__ = ["SimpleTrainer"]

logger = logging.getLogger(__name__)


class SimpleTrainer:
    """Trains ``model`` from ``start_iter`` up to ``max_iter``.

    Each iteration takes this process's share of a global batch, runs the forward pass (under
    autocast when ``amp_dtype`` is set), steps the optimizer and the LR schedule, and every so
    often logs, checkpoints and evaluates, each time first checking that no loss since the last
    time was non-finite (if one was, it stops and saves nothing). Under
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
        # Losses stay on the device until the next log, checkpoint or evaluation: reading them
        # every step would make the host wait for the device mid-step.
        unchecked: List[Tuple[int, Dict[str, torch.Tensor]]] = []
        for iteration in range(start_iter, self.max_iter):
            start = time.perf_counter()
            batch = next(batches)
            data_time = time.perf_counter() - start
            unchecked.append((iteration, self.run_step(batch)))
            self.metrics.add_iteration_time(time.perf_counter() - start)
            next_iter = iteration + 1
            log = next_iter % self.log_period == 0 or next_iter == self.max_iter
            save = next_iter == self.max_iter or next_iter % self.checkpoint_period == 0
            evaluate = self.evaluate is not None and (
                next_iter == self.max_iter or (self.eval_period and next_iter % self.eval_period == 0)
            )
            if not (log or save or evaluate):
                continue
            losses = self._stop_if_not_finite(unchecked)
            unchecked = []
            if log:
                lr = self.optimizer.param_groups[0]["lr"]
                self.metrics.write(iteration, dict(losses, total_loss=sum(losses.values()), lr=lr, data_time=data_time))
                if comm.is_main_process():
                    self.metrics.log_progress(iteration, losses, lr, data_time)
            if save:
                name = "model_final" if next_iter == self.max_iter else f"model_{next_iter:07d}"
                self.checkpointer.save(name, iteration=next_iter)
            if evaluate:
                results = self.evaluate()
                self.model.train()
        return results

    def run_step(self, batch: list) -> Dict[str, torch.Tensor]:
        """One optimizer step on ``batch``; returns the losses, detached, on the device."""
        images = [sample["image"].to(self.device, non_blocking=True) for sample in batch]
        targets = [_to_device(sample["target"], self.device) for sample in batch]
        autocast = (
            torch.autocast(self.device.type, dtype=self.amp_dtype)
            if self.amp_dtype is not None
            else contextlib.nullcontext()
        )
        with autocast:
            loss_dict = self.model(images, targets)
        total = sum(loss_dict.values())

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
        return {k: v.detach() for k, v in loss_dict.items()}

    def _stop_if_not_finite(self, steps: List[Tuple[int, Dict[str, torch.Tensor]]]) -> Dict[str, float]:
        """Raise if any of ``steps`` had a non-finite loss, naming the first; else return the
        last step's losses as floats. Called before anything is saved, so no checkpoint ever
        holds weights that a non-finite loss has touched."""
        names = list(steps[-1][1])
        table = torch.stack([torch.stack([losses[n].float() for n in names]) for _, losses in steps])
        bad_rows = ~torch.isfinite(table).all(dim=1)
        # Every process must take the same decision, or the others would wait for it forever.
        bad = bad_rows.any().float()
        if comm.get_world_size() > 1:
            torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX)
        table, bad_rows = table.cpu(), bad_rows.cpu()  # the host waits for the device here only
        if bad.item():
            kept = self.checkpointer.last_checkpoint() or "none was written yet"
            if bad_rows.any():
                row = int(bad_rows.nonzero()[0])
                losses = ", ".join(f"{n}={v:.4g}" for n, v in zip(names, table[row].tolist()))
                # counted from 1, as the progress line counts
                what = f"iteration {steps[row][0] + 1}/{self.max_iter}: non-finite loss ({losses})"
            else:
                what = f"another process had a non-finite loss by iteration {steps[-1][0] + 1}/{self.max_iter}"
            raise FloatingPointError(
                f"{what}; stopping without saving. The last checkpoint is kept: {kept}. Its losses were "
                "finite, but if they were climbing (see metrics.json) its weights may be diverging too: "
                "restart from an earlier checkpoint (MODEL.WEIGHTS) or from scratch, with a lower "
                "SOLVER.BASE_LR, a longer SOLVER.WARMUP_ITERS or SOLVER.CLIP_GRADIENTS enabled."
            )
        return dict(zip(names, table[-1].tolist()))


def _to_device(target: Dict, device: torch.device) -> Dict:
    """A target's tensors on ``device``; polygons stay on the host, where they are drawn."""
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in target.items()}
