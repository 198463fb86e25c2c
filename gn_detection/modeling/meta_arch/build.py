import logging

import torch
from torch import nn

from ...config import check_config
from ...utils.registry import Registry, lookup

__all__ = ["META_ARCH_REGISTRY", "build_model"]

logger = logging.getLogger(__name__)

META_ARCH_REGISTRY = Registry("META_ARCH")
META_ARCH_REGISTRY.__doc__ = """
Whole models by ``MODEL.META_ARCHITECTURE``. An entry is a class with ``from_config(cfg) -> dict``
of constructor keyword arguments.
"""


def build_model(cfg) -> nn.Module:
    """Build the model that ``cfg`` describes, on ``MODEL.DEVICE``, in training mode."""
    check_config(cfg)
    cls = lookup(META_ARCH_REGISTRY, cfg.MODEL.META_ARCHITECTURE, "MODEL.META_ARCHITECTURE")
    model = cls(**cls.from_config(cfg))
    model.to(torch.device(cfg.MODEL.DEVICE))
    logger.debug("built %s:\n%s", cls.__name__, model)
    return model
