"""Which records each process reads, batch by batch.

Training draws one global stream of records, the same on every process (a new permutation
each epoch from ``seed``), cuts it into global batches of ``IMS_PER_BATCH`` and gives process
``r`` the ``r``-th slice of each. So N processes x B/N images see the batches that one process
x B images would, and a run resumed at iteration k sees what an uninterrupted run would.
"""
import itertools
from typing import Iterator, List, Sequence, Tuple

import torch

from ..utils.errors import UserError

__all__ = ["TrainingBatchSampler", "inference_shard"]

# (position in the global stream, record index): the position seeds that sample's augmentation.
SampleKey = Tuple[int, int]


class TrainingBatchSampler:
    """An endless iterator over this process's share of each global batch.

    Args:
        aspect_ratios: width / height of each record, for grouping.
        global_batch_size: images per iteration over all processes (SOLVER.IMS_PER_BATCH).
        rank, world_size: this process and how many there are.
        seed: the data order's seed.
        group_by_aspect_ratio: fill a global batch only with landscape (w >= h) or only with
            portrait images, so padding them to one size wastes less.
        start_iter: skip the batches of the iterations before this one (resuming).
    """

    def __init__(
        self,
        aspect_ratios: Sequence[float],
        *,
        global_batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        group_by_aspect_ratio: bool = True,
        start_iter: int = 0,
    ):
        if not aspect_ratios:
            raise UserError("the training set has no images (after removing those without annotations)")
        if global_batch_size % world_size:
            raise UserError(
                f"SOLVER.IMS_PER_BATCH={global_batch_size} must be divisible by the {world_size} processes"
            )
        self.landscape = [r >= 1.0 for r in aspect_ratios]
        self.global_batch_size = global_batch_size
        self.local_batch_size = global_batch_size // world_size
        self.rank = rank
        self.seed = seed
        self.group_by_aspect_ratio = group_by_aspect_ratio
        self.start_iter = start_iter

    def _stream(self) -> Iterator[SampleKey]:
        generator = torch.Generator()
        position = itertools.count()
        for epoch in itertools.count():
            generator.manual_seed(self.seed + epoch)
            for index in torch.randperm(len(self.landscape), generator=generator).tolist():
                yield next(position), index

    def _global_batches(self) -> Iterator[List[SampleKey]]:
        if not self.group_by_aspect_ratio:
            stream = self._stream()
            while True:
                yield list(itertools.islice(stream, self.global_batch_size))
        buckets = {True: [], False: []}
        for key in self._stream():
            bucket = buckets[self.landscape[key[1]]]
            bucket.append(key)
            if len(bucket) == self.global_batch_size:
                yield bucket[:]
                bucket.clear()

    def __iter__(self) -> Iterator[List[SampleKey]]:
        lo = self.rank * self.local_batch_size
        # Skipping replays only the index stream, not the images: cheap even for long runs.
        for batch in itertools.islice(self._global_batches(), self.start_iter, None):
            yield batch[lo : lo + self.local_batch_size]


def inference_shard(num_records: int, rank: int, world_size: int) -> range:
    """The contiguous share of ``range(num_records)`` that process ``rank`` evaluates."""
    per_rank = -(-num_records // world_size)
    return range(min(rank * per_rank, num_records), min((rank + 1) * per_rank, num_records))
