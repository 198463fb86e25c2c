import pickle

import pytest
import torch
from torch.utils.data import DataLoader

from gn_detection.data.serialized_list import SerializedList

RECORDS = [
    {"file_name": f"{i}.png", "image_id": i, "annotations": [{"bbox": [0.0, 1.0, 2.5, 3.0 + i], "segmentation": [[1, 2] * 3]}]}
    for i in range(50)
]


def test_items_come_back_equal_and_in_order():
    held = SerializedList(RECORDS)
    assert len(held) == 50
    assert [held[i] for i in range(50)] == RECORDS == list(held)
    assert held.nbytes == sum(len(pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL)) for r in RECORDS)
    # a copy each time: changing what came back cannot change the records
    held[3]["annotations"].clear()
    assert held[3] == RECORDS[3]


def test_bounds_and_empty():
    held = SerializedList(RECORDS[:2])
    for index in (2, -1):
        with pytest.raises(IndexError, match="out of range for 2 items"):
            held[index]
    empty = SerializedList([])
    assert len(empty) == 0 and list(empty) == [] and empty.nbytes == 0


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_workers_read_the_same_records(context):
    held = SerializedList(RECORDS)
    loader = DataLoader(held, batch_size=None, num_workers=2, multiprocessing_context=context)
    assert list(loader) == RECORDS


def test_pickled_with_the_buffer_as_one_tensor():
    """What a spawned worker receives: two tensors, not 50 dicts."""
    held = SerializedList(RECORDS)
    assert {type(v) for v in vars(held).values()} == {torch.Tensor}
    assert list(pickle.loads(pickle.dumps(held))) == RECORDS
