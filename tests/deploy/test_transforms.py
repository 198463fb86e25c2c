"""The NumPy steps around an exported graph against the eager model's torch ones, in both
INPUT.RESIZE_STYLEs."""
import numpy as np
import pytest
import torch

from gn_detection import build_model, get_cfg
from gn_detection.deploy.transforms import resize_image, to_image_pixels
from tests.helpers import TINY_CONFIG


def _transform(style):
    cfg = get_cfg()
    cfg.merge_from_file(str(TINY_CONFIG))
    cfg.merge_from_list(["INPUT.RESIZE_STYLE", style, "INPUT.MIN_SIZE_TEST", "96", "INPUT.MAX_SIZE_TEST", "160"])
    return build_model(cfg).transform.eval(), cfg


@pytest.mark.parametrize("style", ["torchvision", "detectron2"])
@pytest.mark.parametrize("size", [(96, 128), (123, 77), (300, 401), (20, 300)])  # the last is elongated
def test_resize_is_the_eager_models(style, size):
    transform, cfg = _transform(style)
    image = np.random.default_rng(sum(size)).uniform(0, 255, (*size, 3)).astype(np.float32)
    ours = resize_image(image, min_size=96, max_size=160, style=style)
    tensor = torch.from_numpy(image.transpose(2, 0, 1).copy())
    # torchvision's style normalizes before resizing; both are linear, so compare normalized
    eager, _ = transform.resize(transform.normalize(tensor))
    mean, std = (torch.tensor(v)[:, None, None] for v in (cfg.MODEL.PIXEL_MEAN, cfg.MODEL.PIXEL_STD))
    ours_normalized = (torch.from_numpy(ours.transpose(2, 0, 1).copy()) - mean) / std
    assert ours_normalized.shape == eager.shape
    torch.testing.assert_close(ours_normalized, eager, rtol=0, atol=1e-4)


@pytest.mark.parametrize("style", ["torchvision", "detectron2"])
def test_detections_map_back_as_the_eager_models(style):
    transform, _ = _transform(style)
    g = torch.Generator().manual_seed(3)
    resized, original = (96, 128), (150, 200)
    corners = torch.rand(12, 2, generator=g) * torch.tensor([128.0, 96.0]) * 0.7
    boxes = torch.cat([corners, corners + 4 + torch.rand(12, 2, generator=g) * 30], dim=1)
    boxes[0] = torch.tensor([120.0, 90.0, 140.0, 110.0])  # reaches past the image
    detections = dict(boxes=boxes, scores=torch.rand(12, generator=g), labels=torch.randint(1, 4, (12,), generator=g),
                      masks=torch.rand(12, 1, 28, 28, generator=g))
    (eager,) = transform.postprocess([{k: v.clone() for k, v in detections.items()}], [resized], [original])
    ours = to_image_pixels({k: v.numpy() for k, v in detections.items()}, resized, original, style)
    assert ours["masks"].shape == (len(eager["boxes"]), *original)
    np.testing.assert_allclose(ours["boxes"], eager["boxes"].numpy(), atol=1e-4)
    np.testing.assert_array_equal(ours["labels"], eager["labels"].numpy())
    np.testing.assert_allclose(ours["masks"], eager["masks"][:, 0].numpy(), atol=1e-4)
