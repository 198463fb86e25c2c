"""Shared by the comparisons with detectron2 (imported by them once detectron2 is known to be
installed): its configs, and random weights that expose any misplaced or mis-ordered tensor,
written as a detectron2 checkpoint."""
import pickle

import numpy as np
import torch
from torchvision.ops import box_iou
from detectron2 import model_zoo
from detectron2.config import get_cfg as d2_get_cfg


def detectron2_cfg(zoo_config: str):
    """A detectron2 model-zoo config, on the CPU, without weights."""
    cfg = d2_get_cfg()
    cfg.merge_from_file(model_zoo.get_config_file(zoo_config))
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.DEVICE = "cpu"
    return cfg


def perturb_(model: torch.nn.Module, seed: int) -> None:
    """Random norm affines, predictors and biases, so that a tensor loaded into the wrong place
    or a class row in the wrong order changes the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".norm." in name:
                p.add_(torch.randn(p.shape, generator=g) * 0.1)
            elif "cls_score" in name or "mask_head.predictor" in name:
                p.copy_(torch.randn(p.shape, generator=g) * (0.05 if p.dim() > 1 else 0.1))
            elif "bbox_pred" in name or "anchor_deltas" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.01)
            elif "objectness_logits" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
            elif name.endswith(".bias"):  # initialized to zero, where a swapped bias would not show
                p.add_(torch.randn(p.shape, generator=g) * 0.01)


def save_detectron2_checkpoint(model: torch.nn.Module, path) -> str:
    """``model``'s weights as detectron2's model zoo ships them: a pickle of numpy arrays."""
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    path.write_bytes(pickle.dumps({"model": state, "__author__": "test", "matching_heuristics": True}))
    return str(path)


def random_image(height, width, seed):
    """Smooth colours with a few flat shapes, BGR uint8."""
    rng = np.random.default_rng(seed)
    low = rng.uniform(0, 255, size=(height // 32 + 2, width // 32 + 2, 3))
    image = np.kron(low, np.ones((32, 32, 1)))[:height, :width]
    for _ in range(6):
        y, x = rng.integers(0, height - 60), rng.integers(0, width - 60)
        h, w = rng.integers(30, 150), rng.integers(30, 150)
        image[y : y + h, x : x + w] = rng.uniform(0, 255, size=3)
    return np.ascontiguousarray(image.clip(0, 255).astype(np.uint8))


def compare_detections(theirs, mine) -> dict:
    """detectron2's Instances against gn_detection's detections of one image, matched by class
    and box (near-tied scores may rank differently): the fraction matched at IoU > 0.9, the
    largest box and score differences and the smallest mask IoU over the matched ones."""
    their_boxes = theirs.pred_boxes.tensor
    iou = box_iou(their_boxes, mine["boxes"])
    iou[~(theirs.pred_classes[:, None] + 1 == mine["labels"][None, :])] = 0
    best_iou, match = iou.max(dim=1)
    matched = best_iou > 0.9
    their_masks = theirs.pred_masks[matched]
    my_masks = mine["masks"][match[matched], 0] >= 0.5
    inter = (their_masks & my_masks).flatten(1).sum(1).float()
    union = (their_masks | my_masks).flatten(1).sum(1).float()
    return dict(
        count=len(theirs),
        matched=matched.float().mean().item(),
        box=(their_boxes[matched] - mine["boxes"][match[matched]]).abs().max().item(),
        score=(theirs.scores[matched] - mine["scores"][match[matched]]).abs().max().item(),
        # two empty masks (no pixel reaches 0.5) are the same mask
        mask_iou=torch.where(union > 0, inter / union.clamp(min=1), 1.0).min().item(),
    )
