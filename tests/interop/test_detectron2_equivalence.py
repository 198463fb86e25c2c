"""With detectron2 installed, a detectron2 GN Mask R-CNN checkpoint loaded here gives detectron2's
detections. Skipped where detectron2 is not installed; CI installs it and runs this.

``python -m pytest -s tests/interop`` in an environment with detectron2 prints each image's
largest box, score and mask differences."""
import numpy as np
import pytest
import torch

detectron2 = pytest.importorskip("detectron2")

from detectron2.engine import DefaultPredictor  # noqa: E402
from torchvision.ops import box_iou  # noqa: E402

from gn_detection import build_model, get_cfg  # noqa: E402
from gn_detection.checkpoint import InputConvention, load_weights  # noqa: E402
from tests.helpers import CONFIGS  # noqa: E402
from tests.interop.detectron2_reference import detectron2_cfg, perturb_, save_detectron2_checkpoint  # noqa: E402


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


@pytest.fixture(scope="module")
def detectron2_predictor_and_weights(tmp_path_factory):
    cfg = detectron2_cfg("Misc/mask_rcnn_R_50_FPN_3x_gn.yaml")
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
    torch.manual_seed(0)
    predictor = DefaultPredictor(cfg)
    perturb_(predictor.model, seed=1)
    return predictor, save_detectron2_checkpoint(predictor.model, tmp_path_factory.mktemp("d2") / "model_final.pkl")


@pytest.fixture(scope="module")
def ours(detectron2_predictor_and_weights):
    _, path = detectron2_predictor_and_weights
    cfg = get_cfg()
    cfg.merge_from_file(str(CONFIGS / "detectron2" / "mask_rcnn_R_50_FPN_3x_gn.yaml"))
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
    model = build_model(cfg).eval()
    report = load_weights(model, path, input=InputConvention.from_config(cfg), strict=True)
    assert report.problems == []
    return model


@pytest.mark.parametrize("height, width, seed", [(480, 640, 0), (600, 400, 1)])
def test_same_detections_as_detectron2(detectron2_predictor_and_weights, ours, height, width, seed):
    predictor, _ = detectron2_predictor_and_weights
    image = random_image(height, width, seed)
    with torch.no_grad():
        theirs = predictor(image)["instances"]
        mine = ours([torch.from_numpy(image).permute(2, 0, 1).float()])[0]
    assert len(theirs) > 50
    their_boxes = theirs.pred_boxes.tensor
    # Match by class and box: near-tied scores may be ranked differently.
    iou = box_iou(their_boxes, mine["boxes"])
    same_class = theirs.pred_classes[:, None] + 1 == mine["labels"][None, :]
    iou[~same_class] = 0
    best_iou, match = iou.max(dim=1)
    matched = best_iou > 0.9
    # Detections ranked near the 100-detection cut-off can swap with their neighbours.
    assert matched.float().mean() >= 0.98
    box_diff = (their_boxes[matched] - mine["boxes"][match[matched]]).abs().max().item()
    score_diff = (theirs.scores[matched] - mine["scores"][match[matched]]).abs().max().item()
    their_masks = theirs.pred_masks[matched]
    my_masks = mine["masks"][match[matched], 0] >= 0.5
    inter = (their_masks & my_masks).flatten(1).sum(1).float()
    union = (their_masks | my_masks).flatten(1).sum(1).float()
    # two empty masks (no pixel reaches 0.5) are the same mask
    mask_iou = torch.where(union > 0, inter / union.clamp(min=1), 1.0).min().item()
    print(
        f"\n{height}x{width}: {int(matched.sum())}/{len(theirs)} detections matched; max box difference "
        f"{box_diff:.4f} px, max score difference {score_diff:.2e}, min mask IoU {mask_iou:.4f}"
    )
    assert box_diff <= 0.5
    assert score_diff <= 1e-3
    assert mask_iou >= 0.99
