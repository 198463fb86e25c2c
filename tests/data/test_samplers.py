import itertools

import pytest

from gn_detection.data.samplers import TrainingBatchSampler, inference_shard

RATIOS = [1.5, 0.7, 1.2, 0.8, 1.0, 0.5, 2.0, 1.4, 0.9]


def batches(n, **kwargs):
    return list(itertools.islice(iter(TrainingBatchSampler(RATIOS, **kwargs)), n))


@pytest.mark.parametrize("grouping", [True, False])
def test_processes_split_the_global_batch_of_a_single_process(grouping):
    single = batches(12, global_batch_size=4, seed=3, group_by_aspect_ratio=grouping)
    ranks = [batches(12, global_batch_size=4, rank=r, world_size=2, seed=3, group_by_aspect_ratio=grouping) for r in (0, 1)]
    for it in range(12):
        assert ranks[0][it] + ranks[1][it] == single[it]
        assert len(ranks[0][it]) == 2


@pytest.mark.parametrize("grouping", [True, False])
def test_start_iter_continues_the_same_stream(grouping):
    full = batches(15, global_batch_size=2, seed=1, group_by_aspect_ratio=grouping)
    resumed = batches(5, global_batch_size=2, seed=1, group_by_aspect_ratio=grouping, start_iter=10)
    assert resumed == full[10:]


def test_every_record_appears_once_per_epoch_and_epochs_differ():
    keys = [k for b in batches(6, global_batch_size=3, seed=0, group_by_aspect_ratio=False) for k in b]
    positions, indices = zip(*keys)
    assert list(positions) == list(range(18))
    assert sorted(indices[:9]) == list(range(9)) and sorted(indices[9:]) == list(range(9))
    assert indices[:9] != indices[9:]
    assert batches(3, global_batch_size=3, seed=1, group_by_aspect_ratio=False) != batches(
        3, global_batch_size=3, seed=0, group_by_aspect_ratio=False
    )


def test_grouped_batches_do_not_mix_orientations():
    for batch in batches(20, global_batch_size=2, seed=0):
        assert len({RATIOS[index] >= 1.0 for _, index in batch}) == 1


def test_batch_must_divide_over_processes_and_the_set_must_not_be_empty():
    with pytest.raises(ValueError, match="IMS_PER_BATCH=3 must be divisible by the 2 processes"):
        TrainingBatchSampler(RATIOS, global_batch_size=3, world_size=2)
    with pytest.raises(ValueError, match="no images"):
        TrainingBatchSampler([], global_batch_size=2)


@pytest.mark.parametrize("n, world", [(10, 3), (2, 4), (0, 2), (7, 1)])
def test_inference_shards_cover_every_image_once(n, world):
    covered = [i for r in range(world) for i in inference_shard(n, r, world)]
    assert covered == list(range(n))
