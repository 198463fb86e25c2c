"""Starting one process per device: spawned on one machine, or by torchrun on many."""
import logging
import os
import socket
from datetime import timedelta
from typing import Any, Callable, Tuple

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ..utils.errors import UserError

__all__ = ["launch", "launched_by_torchrun"]

logger = logging.getLogger(__name__)

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def launched_by_torchrun() -> bool:
    return all(v in os.environ for v in TORCHRUN_VARIABLES)


def _backend() -> str:
    # NCCL needs one GPU per process; gloo runs the same program on CPUs.
    return "nccl" if torch.cuda.is_available() else "gloo"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(local_rank: int, main: Callable, world_size: int, dist_url: str, args: Tuple) -> None:
    _init_process_group(dist_url, rank=local_rank, world_size=world_size, local_rank=local_rank)
    try:
        main(*args)
    finally:
        dist.destroy_process_group()


def _init_process_group(init_method: str, *, rank: int, world_size: int, local_rank: int) -> None:
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    dist.init_process_group(
        _backend(), init_method=init_method, rank=rank, world_size=world_size, timeout=timedelta(minutes=30)
    )


def launch(main: Callable, num_processes: int = 1, args: Tuple[Any, ...] = ()) -> None:
    """Run ``main(*args)`` in every process of the job.

    - Under torchrun (its RANK, WORLD_SIZE, ... variables are set): join its process group.
    - With ``num_processes`` > 1: spawn that many processes on this machine, one per GPU when
      there are GPUs (NCCL), else on the CPU (gloo), talking over a free local port.
    - Otherwise: call ``main`` in this process.
    """
    if launched_by_torchrun():
        local_rank = int(os.environ["LOCAL_RANK"])
        _init_process_group(
            "env://", rank=int(os.environ["RANK"]), world_size=int(os.environ["WORLD_SIZE"]), local_rank=local_rank
        )
        try:
            main(*args)
        finally:
            dist.destroy_process_group()
    elif num_processes > 1:
        if torch.cuda.is_available() and num_processes > torch.cuda.device_count():
            raise UserError(f"--num-gpus {num_processes}: only {torch.cuda.device_count()} GPUs are visible")
        dist_url = f"tcp://127.0.0.1:{_free_port()}"
        logger.info("spawning %d processes (%s backend) at %s", num_processes, _backend(), dist_url)
        mp.start_processes(_worker, args=(main, num_processes, dist_url, args), nprocs=num_processes, start_method="spawn")
    else:
        main(*args)
