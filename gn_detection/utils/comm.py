"""The few torch.distributed calls the rest of the package needs; each works without a process
group too, as a single process."""
from typing import Any, List

import torch.distributed as dist
from torch import nn

__all__ = ["get_rank", "get_world_size", "is_main_process", "synchronize", "all_gather", "unwrap"]


def _initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_world_size() -> int:
    return dist.get_world_size() if _initialized() else 1


def get_rank() -> int:
    return dist.get_rank() if _initialized() else 0


def is_main_process() -> bool:
    return get_rank() == 0


def synchronize() -> None:
    """Wait for every process."""
    if get_world_size() > 1:
        dist.barrier()


def all_gather(data: Any) -> List[Any]:
    """Every process's ``data`` (any picklable object), in rank order, on every process."""
    if get_world_size() == 1:
        return [data]
    gathered = [None] * get_world_size()
    dist.all_gather_object(gathered, data)
    return gathered


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside DistributedDataParallel, or ``model`` itself."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
