import datetime
import logging
import time

import torch
from torch import nn

from ..utils import comm

__all__ = ["inference_on_dataset"]

logger = logging.getLogger(__name__)


def inference_on_dataset(model: nn.Module, data_loader, evaluator, *, log_period: int = 50) -> dict:
    """Run ``model`` in eval mode over ``data_loader`` (mapper dicts), feed ``evaluator`` and
    return its ``evaluate()``; the model's training mode is restored afterwards."""
    was_training = model.training
    model.eval()
    evaluator.reset()
    total = len(data_loader)
    start = time.perf_counter()
    try:
        with torch.no_grad():
            for i, batch in enumerate(data_loader):
                device = next(model.parameters()).device
                outputs = model([sample["image"].to(device) for sample in batch])
                evaluator.process([sample["image_id"] for sample in batch], outputs)
                if (i + 1) % log_period == 0 or i + 1 == total:
                    per_image = (time.perf_counter() - start) / (i + 1)
                    eta = datetime.timedelta(seconds=int(per_image * (total - i - 1)))
                    logger.info("inference %d/%d  %.3f s/image  eta %s", i + 1, total, per_image, eta)
    finally:
        model.train(was_training)
    comm.synchronize()
    return evaluator.evaluate()
