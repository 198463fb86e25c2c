"""The GN paper's Figure 1 at small scale: a narrow ResNet classifies the objects of a COCO-format
set (each instance's box, cropped square and resized), trained with BN or GN at several batch
sizes for the same number of epochs, its validation error plotted against the batch size.

The paper trains ResNet-50 on ImageNet (BN: 23.6 % error at 32 images per GPU, 34.7 % at 2; GN
about 24 % throughout). Here the net, the data and the epochs are small, so only the shape of the
curves can be compared, not the numbers.
"""
import functools
import json
import logging
import os
import time
from datetime import timedelta
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..data.build import load_datasets
from ..data.image_io import read_image
from ..layers import GroupNorm
from ..modeling.backbone.resnet import BasicBlock, BasicStem, make_stage
from ..utils.errors import UserError
from ..utils.file_io import atomic_write_json

__all__ = ["CLASSIFIER_NORMS", "crops_of", "run_classification_study", "train_classifier"]

logger = logging.getLogger(__name__)

CLASSIFIER_NORMS = {"BN": nn.BatchNorm2d, "GN": functools.partial(GroupNorm, num_groups=8)}
BASE_LR, BASE_BATCH = 0.1, 32  # the paper's: 0.1 for 32 images, scaled linearly


def crops_of(dataset: str, size: int = 32) -> Tuple[torch.Tensor, torch.Tensor]:
    """Every non-crowd instance of ``dataset`` as a square crop around its box, resized to
    ``size``, standardized per channel; and its label (0-based)."""
    crops, labels = [], []
    for record in load_datasets([dataset], filter_empty=True, key="--dataset").records:
        image = torch.from_numpy(read_image(record["file_name"], "RGB")).permute(2, 0, 1)
        for a in record["annotations"]:
            if a.get("iscrowd", 0):
                continue
            x0, y0, x1, y1 = a["bbox"]  # records hold XYXY
            side, cx, cy = max(x1 - x0, y1 - y0), (x0 + x1) / 2, (y0 + y1) / 2
            x0, y0 = max(0, int(cx - side / 2)), max(0, int(cy - side / 2))
            patch = image[:, y0 : y0 + max(1, int(side)), x0 : x0 + max(1, int(side))]
            crops.append(F.interpolate(patch[None], size=(size, size), mode="bilinear", align_corners=False)[0])
            labels.append(a["category_id"] - 1)
    images = torch.stack(crops)
    images = (images - images.mean(dim=(0, 2, 3), keepdim=True)) / images.std(dim=(0, 2, 3), keepdim=True)
    return images, torch.tensor(labels)


def build_classifier(norm: str, num_classes: int, width: int = 32) -> nn.Module:
    """Stem (stride 4) and three stages of two basic blocks, widths 32-64-128, then pooling."""
    spec = CLASSIFIER_NORMS[norm]
    stages = [
        nn.Sequential(*make_stage(BasicBlock, 2, in_channels=w_in, out_channels=w_out, stride=s, norm=spec))
        for w_in, w_out, s in ((width, width, 1), (width, width * 2, 2), (width * 2, width * 4, 2))
    ]
    return nn.Sequential(BasicStem(3, width, norm=spec), *stages, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(width * 4, num_classes))


def train_classifier(norm: str, batch: int, epochs: int, seed: int, train, val) -> float:
    """Validation error (%) after ``epochs`` of SGD (momentum 0.9, the LR scaled linearly,
    cosine decay to 0) at ``batch`` images per step."""
    torch.manual_seed(seed)
    images, labels = train
    model = build_classifier(norm, int(labels.max()) + 1)
    steps = epochs * (len(images) // batch)
    optimizer = torch.optim.SGD(model.parameters(), lr=BASE_LR * batch / BASE_BATCH, momentum=0.9, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(images) - batch + 1, batch):  # BN needs every batch full
            index = order[start : start + batch]
            loss = F.cross_entropy(model(images[index]), labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    model.eval()
    with torch.no_grad():
        predicted = torch.cat([model(chunk).argmax(1) for chunk in val[0].split(256)])
    return float((predicted != val[1]).float().mean()) * 100


def run_classification_study(
    train_set: str, val_set: str, *, norms: Sequence[str], batches: Sequence[int], epochs: int, seeds: Sequence[int],
    output_dir: str,
) -> List[Dict]:
    """One row per norm, batch and seed: its validation error and seconds. Each run's row is kept in
    ``<output_dir>/runs/``; a study started again in the same folder does not redo those runs."""
    train, val = crops_of(train_set), crops_of(val_set)
    logger.info("classification study: %d training and %d validation crops", len(train[0]), len(val[0]))
    runs = [(norm, batch, seed) for norm in norms for batch in batches for seed in seeds]
    rows, start, trained = [], time.perf_counter(), 0
    for done, (norm, batch, seed) in enumerate(runs):
        path = os.path.join(output_dir, "runs", f"{norm}_b{batch}_s{seed}.json")
        row = _finished_run(path, epochs)
        if row is None:
            run_start = time.perf_counter()
            error = train_classifier(norm, batch, epochs, seed, train, val)
            row = dict(norm=norm, batch=batch, seed=seed, epochs=epochs, error=error,
                       seconds=time.perf_counter() - run_start)
            atomic_write_json(path, row)
            trained += 1
            elapsed = time.perf_counter() - start
            logger.info("classification study: %s at batch %d, seed %d: %.1f %% error (%d/%d runs, %s, eta %s)",
                        norm, batch, seed, error, done + 1, len(runs), timedelta(seconds=int(elapsed)),
                        timedelta(seconds=int(elapsed / trained * (len(runs) - done - 1))))
        rows.append(row)
    return rows


def _finished_run(path: str, epochs: int) -> Optional[Dict]:
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        row = json.load(f)
    if row.get("epochs") != epochs:
        raise UserError(f"{path}: this run trained {row.get('epochs')} epochs, this study asks for {epochs}: "
                        f"use another --output")
    logger.info("classification study: %s is done already", path)
    return row

