"""Training checkpoints: everything a run needs to continue exactly where it stopped."""
import glob
import logging
import os
import random
from typing import Dict, Optional

import numpy as np
import torch
from torch import nn

from ..utils import comm
from ..utils.comm import unwrap
from ..utils.errors import UserError
from .io import atomic_save, atomic_write_text, load_torch_file

__all__ = ["Checkpointer", "get_rng_states", "set_rng_states"]

logger = logging.getLogger(__name__)

LAST_CHECKPOINT = "last_checkpoint"


def get_rng_states() -> Dict:
    """Every global RNG, in types that ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    states = dict(
        torch=torch.get_rng_state(),
        python=random.getstate(),
        numpy=[kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached_gaussian],
    )
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: Dict) -> None:
    torch.set_rng_state(states["torch"])
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached_gaussian = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached_gaussian))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class Checkpointer:
    """Saves and restores the model, optimizer, LR scheduler, loss scaler, iteration and RNGs.

    Files go to ``output_dir``; ``last_checkpoint`` there names the newest. Each file is written
    to a temporary name and renamed, so a run killed mid-write leaves the previous one intact.
    Only the main process writes.
    """

    def __init__(self, output_dir: str, *, model: nn.Module, metadata: Optional[Dict] = None, **trainables):
        self.output_dir = output_dir
        self.model = model
        self.metadata = dict(metadata or {})
        self.trainables = {k: v for k, v in trainables.items() if v is not None}

    def save(self, name: str, *, iteration: int) -> str:
        """Write ``<output_dir>/<name>.pth`` for resuming at ``iteration``; return its path."""
        path = os.path.join(self.output_dir, f"{name}.pth")
        if comm.is_main_process():
            state = dict(
                format="gn_detection",
                model=unwrap(self.model).state_dict(),
                iteration=iteration,
                rng=get_rng_states(),
                metadata=self.metadata,
            )
            state.update({k: v.state_dict() for k, v in self.trainables.items()})
            try:
                atomic_save(state, path)
            except OSError as e:  # a full disk, mostly: torch's zip writer buries the reason
                raise UserError(
                    f"{path}: cannot write the checkpoint ({e.strerror or e}); the partial file was removed "
                    f"and {LAST_CHECKPOINT} still names {self.last_checkpoint() or 'no checkpoint'}"
                ) from e
            atomic_write_text(os.path.basename(path), os.path.join(self.output_dir, LAST_CHECKPOINT))
            logger.info("saved %s (next iteration %d)", path, iteration)
        comm.synchronize()
        return path

    def remove_stale_temporaries(self) -> None:
        """Delete the temporary files of saves that a killed run left half-written (atomic_save
        writes ``.<name>.<random>.tmp`` beside the checkpoint and renames it when complete)."""
        if not comm.is_main_process():
            return
        for pattern in (".model_*.pth.*.tmp", f".{LAST_CHECKPOINT}.*.tmp"):
            for path in glob.glob(os.path.join(glob.escape(self.output_dir), pattern)):
                os.remove(path)
                logger.warning("removed %s, left by a save that did not finish", path)

    def last_checkpoint(self) -> Optional[str]:
        marker = os.path.join(self.output_dir, LAST_CHECKPOINT)
        if not os.path.isfile(marker):
            return None
        with open(marker) as f:
            return os.path.join(self.output_dir, f.read().strip())

    def resume(self) -> Optional[Dict]:
        """Restore the last checkpoint. Return ``{"iteration": the one to continue at,
        "metadata": as saved}``, or None if there is none (the run then starts fresh)."""
        path = self.last_checkpoint()
        if path is None:
            logger.info("--resume: no checkpoint in %s; starting from scratch", self.output_dir)
            return None
        state = load_torch_file(path)
        unwrap(self.model).load_state_dict(state["model"])
        for key, trainable in self.trainables.items():
            trainable.load_state_dict(state[key])
        set_rng_states(state["rng"])
        self.metadata = dict(state["metadata"])
        logger.info("resumed from %s at iteration %d", path, state["iteration"])
        return dict(iteration=state["iteration"], metadata=state["metadata"])
