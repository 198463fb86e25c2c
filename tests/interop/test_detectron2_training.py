"""With detectron2 installed, a training step here equals detectron2's: the same five losses, the
same gradient for every parameter both models have, the same weights after three SGD steps.

Both models start from the same random detectron2 weights and see the same batch at its final
size (the short side is MIN_SIZE_TRAIN, so neither resizes). Sampling takes every labelled
anchor and every proposal, so that both draw the same samples whatever their random numbers.
``python -m pytest -s tests/interop`` prints each case's table."""
from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np
import pytest
import torch

detectron2 = pytest.importorskip("detectron2")

from detectron2.modeling import build_model as d2_build_model  # noqa: E402
from detectron2.structures import BitMasks, Boxes, Instances, PolygonMasks  # noqa: E402
from detectron2.utils.events import EventStorage  # noqa: E402
from pycocotools import mask as mask_utils  # noqa: E402

from gn_detection import build_model, get_cfg  # noqa: E402
from gn_detection.checkpoint import InputConvention, load_weights  # noqa: E402
from gn_detection.checkpoint.formats.detectron2 import DETECTRON2  # noqa: E402
from gn_detection.checkpoint.rename import convert  # noqa: E402
from gn_detection.benchmark.models import calibrate_frozen_batchnorm  # noqa: E402
from tests.helpers import CONFIGS  # noqa: E402
from tests.interop.detectron2_reference import detectron2_cfg, perturb_, save_detectron2_checkpoint  # noqa: E402

SHORT_SIDE = 320
PROPOSALS_PER_IMAGE = 150
STEPS = 3


@dataclass
class Case:
    name: str
    zoo_config: str  # detectron2's
    config: str  # ours
    mask_format: str
    # (height, width, instances) per image; the short side of each must be SHORT_SIDE
    images: Tuple[Tuple[int, int, int], ...]
    # Random frozen-BN weights give gradients ten times GN's and a step so ill-conditioned that
    # float rounding grows with the learning rate: at 0.002, two runs of detectron2's own model
    # (its parallel sums are not deterministic) end 3.9e-4 apart after three steps.
    lr: float = 0.02


CASES = [
    Case("GN, bitmasks", "Misc/mask_rcnn_R_50_FPN_3x_gn.yaml", "mask_rcnn_R_50_FPN_3x_gn.yaml", "bitmask",
         ((320, 448, 3), (384, 320, 2))),
    Case("frozen BN, polygons, an image without instances", "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml",
         "mask_rcnn_R_50_FPN_3x.yaml", "polygon", ((320, 416, 4), (352, 320, 0)), lr=1e-4),
]


def random_polygon(rng, height: int, width: int) -> np.ndarray:
    """A star-shaped polygon of 5-9 vertices inside the image, float64 [x0, y0, ...]."""
    cx, cy = rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height
    radius = rng.uniform(0.1, 0.2) * min(height, width)
    angles = np.sort(rng.uniform(0, 2 * np.pi, rng.integers(5, 10)))
    radii = radius * rng.uniform(0.5, 1.5, len(angles))
    xy = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
    return (xy.clip(0, [width - 1, height - 1])).reshape(-1)


def make_batch(case: Case, seed: int = 0):
    """Images (BGR, whole numbers in 0-255) and their instances: boxes, classes, polygons, bitmasks."""
    rng = np.random.default_rng(seed)
    batch = []
    for height, width, count in case.images:
        image = rng.integers(0, 256, size=(3, height // 16, width // 16)).repeat(16, 1).repeat(16, 2)
        polygons = [[random_polygon(rng, height, width)] for _ in range(count)]
        bitmasks = np.stack(
            [mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(p, height, width))) for p in polygons]
        ) if count else np.zeros((0, height, width), np.uint8)
        boxes = [[p[0][0::2].min(), p[0][1::2].min(), p[0][0::2].max(), p[0][1::2].max()] for p in polygons]
        for mask in bitmasks:  # paint the instances so they can be found
            image[:, mask.astype(bool)] = rng.integers(0, 256, size=(3, 1))
        # Texture everywhere: a flat RoI would give GN groups of near-zero variance, whose
        # 1/sigma turns float rounding into large gradient differences.
        image = (image + rng.integers(-32, 33, size=image.shape)).clip(0, 255)
        batch.append(dict(
            image=torch.from_numpy(image.astype(np.uint8)),
            boxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            classes=torch.from_numpy(rng.integers(0, 80, count)),
            polygons=polygons,
            bitmasks=torch.from_numpy(bitmasks),
        ))
    return batch


def detectron2_inputs(batch, mask_format: str) -> List[dict]:
    inputs = []
    for sample in batch:
        height, width = sample["image"].shape[1:]
        instances = Instances((height, width), gt_boxes=Boxes(sample["boxes"]), gt_classes=sample["classes"])
        instances.gt_masks = (
            PolygonMasks(sample["polygons"]) if mask_format == "polygon" else BitMasks(sample["bitmasks"].bool())
        )
        inputs.append(dict(image=sample["image"], instances=instances, height=height, width=width))
    return inputs


def our_inputs(batch, mask_format: str):
    images = [sample["image"].float() for sample in batch]
    targets = []
    for sample in batch:
        target = dict(boxes=sample["boxes"], labels=sample["classes"] + 1)  # background is 0 here
        if mask_format == "polygon":
            target["polygons"] = [[p.copy() for p in instance] for instance in sample["polygons"]]
        else:
            target["masks"] = sample["bitmasks"]
        targets.append(target)
    return images, targets


def take_every_sample(cfg, num_anchors: int) -> None:
    """Sampling that draws every labelled anchor and every proposal: then neither model's random
    numbers matter. With the RPN batch equal to the anchor count its loss normalizer is real."""
    cfg.MODEL.RPN.BATCH_SIZE_PER_IMAGE = num_anchors
    cfg.MODEL.RPN.POSITIVE_FRACTION = 1.0
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = PROPOSALS_PER_IMAGE
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 100000
    cfg.MODEL.ROI_HEADS.POSITIVE_FRACTION = 1.0


def anchor_count(case: Case) -> int:
    """Anchors over P2-P6 of the padded batch (3 per location)."""
    height = max(-(-h // 32) * 32 for h, _, _ in case.images)
    width = max(-(-w // 32) * 32 for _, w, _ in case.images)
    return sum(3 * -(-height // s) * -(-width // s) for s in (4, 8, 16, 32, 64))


def relative_difference(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return float((ours - theirs).norm() / theirs.norm().clamp(min=1e-12))


def train_both(case: Case, tmp_path):
    """Run both models for STEPS SGD steps on one batch; return the first step's losses and
    gradients (detectron2's converted to our names) and the final weights."""
    d2_cfg = detectron2_cfg(case.zoo_config)
    take_every_sample(d2_cfg, anchor_count(case))
    torch.manual_seed(0)
    theirs = d2_build_model(d2_cfg)
    perturb_(theirs, seed=1)
    batch = make_batch(case)
    # Frozen BN starts as the identity, which would blow the activations up through 50 layers.
    calibrate_frozen_batchnorm(theirs, (detectron2_inputs(batch, case.mask_format),))
    theirs.train()
    weights = save_detectron2_checkpoint(theirs, tmp_path / "model.pkl")

    cfg = get_cfg()
    cfg.merge_from_file(str(CONFIGS / "detectron2" / case.config))
    cfg.merge_from_list(["INPUT.MIN_SIZE_TRAIN", (SHORT_SIDE,), "INPUT.MASK_FORMAT", case.mask_format])
    take_every_sample(cfg, anchor_count(case))
    ours = build_model(cfg).train()
    assert load_weights(ours, weights, input=InputConvention.from_config(cfg), strict=True).problems == []

    our_state = ours.state_dict()
    result = dict(losses=[], grads=[])
    optimizers = [
        torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=case.lr, momentum=0.9) for m in (theirs, ours)
    ]
    for _ in range(STEPS):
        with EventStorage():
            their_losses = theirs(detectron2_inputs(batch, case.mask_format))
        our_losses = ours(*our_inputs(batch, case.mask_format))
        for model, losses, optimizer in zip((theirs, ours), (their_losses, our_losses), optimizers):
            optimizer.zero_grad()
            sum(losses.values()).backward()
        if not result["losses"]:
            result["losses"] = {k: (their_losses[k].item(), our_losses[k].item()) for k in their_losses}
            their_grads = {n: p.grad for n, p in theirs.named_parameters() if p.grad is not None}
            converted, _ = convert(their_grads, DETECTRON2, our_state)
            result["grads"] = {
                n: (converted[n], p.grad) for n, p in ours.named_parameters() if p.grad is not None and n in converted
            }
        for optimizer in optimizers:
            optimizer.step()
    converted, _ = convert(dict(theirs.named_parameters()), DETECTRON2, our_state)
    result["weights"] = {n: (converted[n], p.detach()) for n, p in ours.named_parameters() if p.requires_grad}
    return result


@pytest.fixture(scope="module", params=CASES, ids=lambda c: c.name)
def trained(request, tmp_path_factory):
    return request.param, train_both(request.param, tmp_path_factory.mktemp("d2_training"))


def test_every_loss_equals_detectron2s(trained):
    case, result = trained
    losses: Dict[str, Tuple[float, float]] = result["losses"]
    assert set(losses) == {"loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_box_reg", "loss_mask"}
    print(f"\n{case.name}\n| loss | detectron2 | gn_detection | relative difference |\n|---|---|---|---|")
    for name, (theirs, ours) in losses.items():
        print(f"| {name} | {theirs:.6f} | {ours:.6f} | {abs(ours - theirs) / abs(theirs):.1e} |")
    for name, (theirs, ours) in losses.items():
        assert theirs > 0 and abs(ours - theirs) <= 1e-4 * abs(theirs), name


def test_every_gradient_equals_detectron2s(trained):
    case, result = trained
    differences = {n: relative_difference(ours, theirs) for n, (theirs, ours) in result["grads"].items()}
    worst = max(differences, key=differences.get)
    print(f"\n{case.name}: {len(differences)} gradients, largest relative difference {differences[worst]:.1e} ({worst})")
    assert len(differences) > 60  # every trainable tensor of backbone, FPN, RPN and heads
    assert {n for n, d in differences.items() if d > 1e-3} == set()


def test_weights_after_three_sgd_steps_equal_detectron2s(trained):
    case, result = trained
    differences = {n: relative_difference(ours, theirs) for n, (theirs, ours) in result["weights"].items()}
    worst = max(differences, key=differences.get)
    print(f"\n{case.name}: after {STEPS} steps, largest relative weight difference {differences[worst]:.1e} ({worst})")
    assert {n for n, d in differences.items() if d > 1e-4} == set()
