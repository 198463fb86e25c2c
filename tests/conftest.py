from pathlib import Path

import pytest
import torch

from gn_detection import get_cfg

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
TINY_CONFIG = CONFIGS / "tiny" / "mask_rcnn_R_18_FPN_tiny_gn.yaml"


@pytest.fixture
def tiny_cfg():
    cfg = get_cfg()
    cfg.merge_from_file(str(TINY_CONFIG))
    return cfg


def make_sample(height: int, width: int, num_instances: int, num_classes: int, seed: int):
    """A random image in 0-255 with rectangular instances: their boxes, labels and masks."""
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(3, height, width, generator=g) * 255
    boxes, masks = [], torch.zeros(num_instances, height, width, dtype=torch.uint8)
    for i in range(num_instances):
        w = int(torch.randint(width // 6, width // 2, (1,), generator=g))
        h = int(torch.randint(height // 6, height // 2, (1,), generator=g))
        x0 = int(torch.randint(0, width - w, (1,), generator=g))
        y0 = int(torch.randint(0, height - h, (1,), generator=g))
        boxes.append([x0, y0, x0 + w, y0 + h])
        masks[i, y0 : y0 + h, x0 : x0 + w] = 1
        image[:, y0 : y0 + h, x0 : x0 + w] = 40.0 * (i + 1)
    labels = torch.randint(1, num_classes + 1, (num_instances,), generator=g)
    return image, dict(boxes=torch.tensor(boxes, dtype=torch.float32), labels=labels, masks=masks)
