"""Records held so that DataLoader workers do not copy them.

A Python list of dicts is copied into every forked worker page by page as the workers touch the
objects' reference counts (PyTorch issue 13246): for COCO train that is ~400 MB per worker,
growing through the first epoch, and it looks like a leak. Pickled into one byte buffer the
records are two objects, whose pages the workers only read. detectron2 does the same
(``DatasetFromList(serialize=True)``).
"""
import pickle
from typing import Any, Iterable

import numpy as np
import torch

__all__ = ["SerializedList"]


class SerializedList:
    """A read-only sequence of picklable items, stored as one buffer of their pickles.

    The buffer and the offsets are tensors, so a DataLoader started with ``spawn`` or
    ``forkserver`` hands them to its workers in shared memory instead of a copy each.
    """

    def __init__(self, items: Iterable[Any]):
        buffer, ends = bytearray(), []
        for item in items:
            buffer += pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
            ends.append(len(buffer))
        # from_numpy shares the bytearray's memory, no copy
        self._buffer = torch.from_numpy(np.frombuffer(buffer or bytearray(1), dtype=np.uint8))
        self._ends = torch.tensor(ends, dtype=torch.int64)

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, index: int) -> Any:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} is out of range for {len(self)} items")
        start = int(self._ends[index - 1]) if index > 0 else 0
        return pickle.loads(self._buffer[start : int(self._ends[index])].numpy())

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    @property
    def nbytes(self) -> int:
        """The size of the pickles."""
        return int(self._ends[-1]) if len(self) else 0
