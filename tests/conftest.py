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


def write_coco_dataset(root, samples, num_classes: int = 3) -> str:
    """Write ``make_sample`` outputs as PNGs and a COCO JSON with polygon masks; return the JSON path."""
    import json

    import numpy as np
    from PIL import Image

    images, annotations = [], []
    for image_id, (image, target) in enumerate(samples, start=1):
        file_name = f"{image_id:04d}.png"
        pixels = image.permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
        Image.fromarray(np.ascontiguousarray(pixels)).save(root / file_name)
        images.append(dict(id=image_id, file_name=file_name, height=pixels.shape[0], width=pixels.shape[1]))
        for (x0, y0, x1, y1), label in zip(target["boxes"].tolist(), target["labels"].tolist()):
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=image_id,
                    category_id=label,
                    bbox=[x0, y0, x1 - x0, y1 - y0],
                    area=(x1 - x0) * (y1 - y0),
                    segmentation=[[x0, y0, x1, y0, x1, y1, x0, y1]],
                    iscrowd=0,
                )
            )
    categories = [dict(id=k, name=f"class{k}") for k in range(1, num_classes + 1)]
    path = root / "instances.json"
    path.write_text(json.dumps(dict(images=images, annotations=annotations, categories=categories)))
    return str(path)
