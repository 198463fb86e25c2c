import pytest
import torch

from gn_detection.modeling.backbone import build_backbone
from gn_detection.modeling.poolers import ROIPooler, assign_boxes_to_levels, build_pooler


def square(center, side):
    return [center - side / 2, center - side / 2, center + side / 2, center + side / 2]


def test_levels_follow_fpn_equation_1():
    boxes = torch.tensor([square(500, s) for s in (224, 112, 448, 56, 20, 2000, 223)])
    assert assign_boxes_to_levels(boxes, 2, 5).tolist() == [2, 1, 3, 0, 0, 3, 1]


@pytest.mark.parametrize("aligned, offset", [(True, -0.5), (False, 0.0)])
def test_sampling_points_have_the_half_pixel_offset_only_when_aligned(aligned, offset):
    # A feature equal to its column index: bilinear sampling returns the sample's x exactly.
    columns = torch.arange(64, dtype=torch.float32).expand(1, 1, 64, 64).contiguous()
    pooler = ROIPooler(4, in_features=["p2"], strides=[1], sampling_ratio=1, aligned=aligned)
    x0, x1 = 8.0, 24.0
    out = pooler({"p2": columns}, [torch.tensor([[x0, 8.0, x1, 24.0]])])
    bin_width = (x1 - x0) / 4
    expected = torch.tensor([x0 + (i + 0.5) * bin_width + offset for i in range(4)])
    torch.testing.assert_close(out[0, 0, 0], expected)


def test_each_box_is_read_from_its_level_and_batch_image():
    strides = [4, 8, 16, 32]
    features = {
        f"p{k}": torch.full((2, 1, 256 // s, 256 // s), float(10 * k)) + torch.tensor([0.0, 1.0]).view(2, 1, 1, 1)
        for k, s in zip(range(2, 6), strides)
    }
    pooler = ROIPooler(2, in_features=list(features), strides=strides, aligned=True)
    boxes = [torch.tensor([square(128, 40), square(128, 224)]), torch.tensor([square(100, 120)])]
    out = pooler(features, boxes)
    assert out.shape == (3, 1, 2, 2)
    # 40 px -> P2 of image 0; 224 px -> P4 of image 0; 120 px -> P3 of image 1.
    assert out[:, 0, 0, 0].tolist() == [20.0, 40.0, 31.0]


def test_pooler_type_is_checked(tiny_cfg):
    shapes = build_backbone(tiny_cfg).output_shape()
    pooler, shape = build_pooler(tiny_cfg, "ROI_BOX_HEAD", shapes)
    assert pooler.aligned and shape.channels == 32 and (shape.height, shape.width) == (7, 7)
    tiny_cfg.MODEL.ROI_BOX_HEAD.POOLER_TYPE = "ROIAlign"
    assert not build_pooler(tiny_cfg, "ROI_BOX_HEAD", shapes)[0].aligned
    tiny_cfg.MODEL.ROI_BOX_HEAD.POOLER_TYPE = "ROIPool"
    with pytest.raises(ValueError, match=r"MODEL\.ROI_BOX_HEAD\.POOLER_TYPE='ROIPool'"):
        build_pooler(tiny_cfg, "ROI_BOX_HEAD", shapes)
