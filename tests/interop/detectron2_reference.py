"""Shared by the comparisons with detectron2 (imported by them once detectron2 is known to be
installed): its configs, and random weights that expose any misplaced or mis-ordered tensor,
written as a detectron2 checkpoint."""
import pickle

import torch
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
