import numpy as np
import pytest
import torch
from PIL import Image

from gn_detection.data.mapper import DatasetMapper


@pytest.fixture
def record(tmp_path):
    pixels = np.zeros((20, 30, 3), dtype=np.uint8)
    pixels[:, :, 0] = np.arange(30, dtype=np.uint8)[None, :]  # red grows to the right
    pixels[:, :, 2] = 7
    path = tmp_path / "image.png"
    Image.fromarray(pixels).save(path)
    return dict(
        file_name=str(path),
        image_id=5,
        height=20,
        width=30,
        annotations=[
            dict(id=1, bbox=[2.0, 4.0, 12.0, 10.0], category_id=2, segmentation=[[2, 4, 12, 4, 12, 10, 2, 10]], iscrowd=0),
            dict(id=2, bbox=[0.0, 0.0, 30.0, 20.0], category_id=1, segmentation=[[0, 0, 30, 0, 30, 20, 0, 20]], iscrowd=1),
        ],
    )


class FixedDraw:
    def __init__(self, value):
        self.value = value

    def random(self):
        return self.value


def test_training_target_leaves_crowd_out_and_follows_the_format(record):
    out = DatasetMapper(is_train=True, image_format="BGR", flip="none")(record, FixedDraw(0.0))
    assert out["image"].shape == (3, 20, 30) and out["image"].dtype == torch.float32
    assert out["image"][0, 0, 0] == 7 and out["image"][2, 0, 29] == 29  # BGR: blue first
    target = out["target"]
    assert target["labels"].tolist() == [2]
    assert target["boxes"].tolist() == [[2.0, 4.0, 12.0, 10.0]]
    assert target["masks"].shape == (1, 20, 30) and target["masks"].sum() == 10 * 6
    assert target["masks"][0, 4:10, 2:12].all()


def test_horizontal_flip_moves_image_box_and_mask_together(record):
    mapper = DatasetMapper(is_train=True, image_format="RGB", flip="horizontal")
    kept, flipped = mapper(record, FixedDraw(0.9)), mapper(record, FixedDraw(0.1))
    torch.testing.assert_close(flipped["image"], kept["image"].flip(-1))
    assert flipped["target"]["boxes"].tolist() == [[18.0, 4.0, 28.0, 10.0]]
    assert flipped["target"]["masks"][0].equal(kept["target"]["masks"][0].flip(-1))
    assert flipped["target"]["masks"][0, 4:10, 18:28].all()


def test_evaluation_has_no_target(record):
    out = DatasetMapper(is_train=False, image_format="L")(record)
    assert "target" not in out and out["image"].shape == (1, 20, 30) and out["image_id"] == 5


def test_missing_image_and_wrong_size_name_the_image(record, tmp_path):
    mapper = DatasetMapper(is_train=False, image_format="RGB")
    with pytest.raises(ValueError, match=r"image id 5\).*20x30 \(HxW\) but the annotations say 21x30"):
        mapper(dict(record, height=21))
    with pytest.raises(FileNotFoundError, match=r"image id 5: .*missing\.png"):
        mapper(dict(record, file_name=str(tmp_path / "missing.png")))


def test_bad_settings_name_the_key():
    with pytest.raises(ValueError, match="INPUT.FORMAT='YUV'"):
        DatasetMapper(is_train=True, image_format="YUV")
    with pytest.raises(ValueError, match="INPUT.RANDOM_FLIP='vertical'"):
        DatasetMapper(is_train=True, image_format="RGB", flip="vertical")
