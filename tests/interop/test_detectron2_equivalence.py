"""With detectron2 installed, a detectron2 GN Mask R-CNN checkpoint loaded here gives detectron2's
detections. Skipped where detectron2 is not installed; CI installs it and runs this.

``python -m pytest -s tests/interop`` in an environment with detectron2 prints each image's
largest box, score and mask differences."""
import pytest
import torch

detectron2 = pytest.importorskip("detectron2")

from detectron2.engine import DefaultPredictor  # noqa: E402

from gn_detection import build_model, get_cfg  # noqa: E402
from gn_detection.checkpoint import InputConvention, load_weights  # noqa: E402
from tests.helpers import CONFIGS  # noqa: E402
from tests.interop.detectron2_reference import (  # noqa: E402
    compare_detections,
    detectron2_cfg,
    perturb_,
    random_image,
    save_detectron2_checkpoint,
)


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
    diff = compare_detections(theirs, mine)
    print(
        f"\n{height}x{width}: {diff['matched']:.0%} of {diff['count']} detections matched; max box difference "
        f"{diff['box']:.4f} px, max score difference {diff['score']:.2e}, min mask IoU {diff['mask_iou']:.4f}"
    )
    assert diff["count"] > 50
    # Detections ranked near the 100-detection cut-off can swap with their neighbours.
    assert diff["matched"] >= 0.98
    assert diff["box"] <= 0.5
    assert diff["score"] <= 1e-3
    assert diff["mask_iou"] >= 0.99
