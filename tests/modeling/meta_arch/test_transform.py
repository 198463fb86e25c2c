import numpy as np
import pytest
import torch

from gn_detection import build_model


@pytest.mark.parametrize("style", ["torchvision", "detectron2"])
def test_polygons_are_resized_with_the_image_and_the_input_is_untouched(tiny_cfg, style):
    tiny_cfg.INPUT.RESIZE_STYLE = style
    tiny_cfg.INPUT.MIN_SIZE_TRAIN = (128,)
    transform = build_model(tiny_cfg).transform.train()
    polygon = np.array([10.0, 20.0, 70.0, 20.0, 70.0, 50.0], dtype=np.float64)
    target = dict(boxes=torch.tensor([[10.0, 20.0, 70.0, 50.0]]), labels=torch.tensor([1]), polygons=[[polygon]])
    image, resized = transform.resize(torch.rand(3, 64, 80) * 255, target)
    scale_y, scale_x = image.shape[-2] / 64, image.shape[-1] / 80
    assert image.shape[-2] == 128
    (scaled,) = resized["polygons"][0]
    assert scaled.dtype == np.float64
    np.testing.assert_allclose(scaled, polygon * np.tile([scale_x, scale_y], 3), rtol=1e-12)
    assert target["polygons"][0][0] is polygon and polygon[0] == 10.0
    np.testing.assert_allclose(resized["boxes"][0].numpy(), [10 * scale_x, 20 * scale_y, 70 * scale_x, 50 * scale_y], rtol=1e-6)
