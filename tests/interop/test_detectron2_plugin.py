"""The plugin inside detectron2: its backbone and heads against detectron2's own, its trainer,
a round trip of weights through detectron2, and its mapper against gn_detection's loader.
Skipped where detectron2 is not installed; CI installs it and runs this."""

import numpy as np
import pytest
import torch

detectron2 = pytest.importorskip("detectron2")

from detectron2.checkpoint import DetectionCheckpointer  # noqa: E402
from detectron2.engine import DefaultPredictor  # noqa: E402
from detectron2.modeling import build_backbone, build_model as d2_build_model  # noqa: E402

from gn_detection import build_model, get_cfg  # noqa: E402
from gn_detection.checkpoint import InputConvention, load_torch_file, load_weights  # noqa: E402
from gn_detection.cli import main  # noqa: E402
from gn_detection.data.dicom import DicomReadOptions  # noqa: E402
from gn_detection.data.mapper import DatasetMapper  # noqa: E402
from gn_detection.detectron2 import GNDatasetMapper, GNTrainer, add_gn_detection_config, register_datasets  # noqa: E402
from gn_detection.layers import GroupNorm  # noqa: E402
from gn_detection.utils.errors import UserError  # noqa: E402
from tests.helpers import CONFIGS, write_dicom  # noqa: E402
from tests.interop.detectron2_reference import (  # noqa: E402
    compare_detections,
    detectron2_cfg,
    perturb_,
    random_image,
)

PLUGIN_NAMES = {
    "MODEL.BACKBONE.NAME": "build_gn_resnet_fpn_backbone",
    "MODEL.ROI_BOX_HEAD.NAME": "GNFastRCNNConvFCHead",
    "MODEL.ROI_MASK_HEAD.NAME": "GNMaskRCNNConvUpsampleHead",
}


def gn_zoo_cfg(plugin: bool):
    """detectron2's GN Mask R-CNN R-50-FPN, with its own parts or the plugin's, at 320 px."""
    cfg = detectron2_cfg("Misc/mask_rcnn_R_50_FPN_3x_gn.yaml")
    add_gn_detection_config(cfg)
    cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST = 320, 533
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
    if plugin:
        cfg.merge_from_list([x for kv in PLUGIN_NAMES.items() for x in kv])
    return cfg


def test_with_32_groups_the_plugin_model_is_detectron2s_gn_model():
    torch.manual_seed(0)
    native = d2_build_model(gn_zoo_cfg(plugin=False)).eval()
    perturb_(native, seed=1)
    plugin = d2_build_model(gn_zoo_cfg(plugin=True)).eval()
    assert list(plugin.state_dict()) == list(native.state_dict())  # detectron2's names, in its order
    plugin.load_state_dict(native.state_dict())
    assert isinstance(plugin.backbone.bottom_up.res2[0].conv1.norm, GroupNorm)
    assert isinstance(plugin.roi_heads.box_head.conv1.norm, GroupNorm)
    assert isinstance(plugin.roi_heads.mask_head.mask_fcn1.norm, GroupNorm)
    image = torch.from_numpy(random_image(256, 320, seed=2)).permute(2, 0, 1).float()
    with torch.no_grad():
        theirs, mine = native([{"image": image}])[0]["instances"], plugin([{"image": image}])[0]["instances"]
        features = (native.backbone(image[None]), plugin.backbone(image[None]))
    for level in features[0]:
        assert torch.equal(features[0][level], features[1][level])
    assert torch.equal(theirs.pred_boxes.tensor, mine.pred_boxes.tensor) and torch.equal(theirs.scores, mine.scores)


def test_with_16_groups_the_plugin_loads_the_same_checkpoint_and_runs():
    native = build_backbone(gn_zoo_cfg(plugin=False))
    cfg = gn_zoo_cfg(plugin=True)
    cfg.MODEL.GROUP_NORM.NUM_GROUPS = 16
    plugin = build_backbone(cfg)
    plugin.load_state_dict(native.state_dict())  # strict: GN's parameters do not depend on G
    norms = [m for m in plugin.modules() if isinstance(m, GroupNorm)]
    assert norms and all(m.num_groups == 16 for m in norms)
    with torch.no_grad():
        outputs = plugin(torch.rand(1, 3, 128, 160) * 255)
    assert set(outputs) == {"p2", "p3", "p4", "p5", "p6"} and all(torch.isfinite(v).all() for v in outputs.values())


@pytest.mark.parametrize("key", ["MODEL.RESNETS.NORM", "MODEL.FPN.NORM", "MODEL.ROI_BOX_HEAD.NORM", "MODEL.ROI_MASK_HEAD.NORM"])
@pytest.mark.parametrize("norm", ["EvoNormS0", "FRN"])
def test_norms_that_carry_an_activation_are_refused_where_detectron2_would_stack_relu_on_it(key, norm):
    cfg = gn_zoo_cfg(plugin=True)
    cfg.merge_from_list([key, norm])
    with pytest.raises(UserError, match=rf"{key}='{norm}': this norm carries its own activation"):
        d2_build_model(cfg)


def test_detectron2s_trainer_with_the_plugin_trains_evaluates_and_resumes(tmp_path, small_builtin_datasets):
    from detectron2.config import get_cfg as d2_get_cfg

    cfg = d2_get_cfg()
    add_gn_detection_config(cfg)
    cfg.merge_from_file(str(CONFIGS / "detectron2" / "plugin_synthetic_xray_R_18_FPN_gn.yaml"))
    cfg.merge_from_list([
        "MODEL.DEVICE", "cpu", "DATASETS.TRAIN", "('shapes_train',)", "DATASETS.TEST", "('shapes_val',)",
        "MODEL.ROI_HEADS.NUM_CLASSES", "3", "INPUT.FORMAT", "BGR",
        "MODEL.PIXEL_MEAN", "[103.53, 116.28, 123.675]", "MODEL.PIXEL_STD", "[57.375, 57.12, 58.395]",
        "INPUT.MIN_SIZE_TRAIN", "(128,)", "INPUT.MAX_SIZE_TRAIN", "128", "INPUT.MIN_SIZE_TEST", "128",
        "INPUT.MAX_SIZE_TEST", "128", "DATALOADER.NUM_WORKERS", "0", "SOLVER.MAX_ITER", "20",
        "SOLVER.WARMUP_ITERS", "5", "SOLVER.STEPS", "()", "SOLVER.CHECKPOINT_PERIOD", "10",
        "OUTPUT_DIR", str(tmp_path / "run"),
    ])
    register_datasets(cfg)
    trainer = GNTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    results = GNTrainer.test(cfg, trainer.model)
    assert set(results) == {"bbox", "segm", "froc"}
    assert np.isfinite(results["bbox"]["AP"]) and "sensitivity@1" in results["froc"]
    assert (tmp_path / "run" / "last_checkpoint").read_text() == "model_final.pth"

    cfg.defrost()
    cfg.SOLVER.MAX_ITER = 22
    resumed = GNTrainer(cfg)
    resumed.resume_or_load(resume=True)
    assert resumed.start_iter == 20
    final = load_torch_file(str(tmp_path / "run" / "model_final.pth"))["model"]
    for key, value in resumed.model.state_dict().items():
        torch.testing.assert_close(value, final[key], rtol=0, atol=0)


@pytest.fixture(scope="module")
def trained_here(tmp_path_factory):
    """A gn_detection model of detectron2's GN topology with random weights, saved as a training
    checkpoint, and its config."""
    cfg = get_cfg()
    cfg.merge_from_file(str(CONFIGS / "detectron2" / "mask_rcnn_R_50_FPN_3x_gn.yaml"))
    cfg.merge_from_list(["MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0", "INPUT.MIN_SIZE_TEST", "320", "INPUT.MAX_SIZE_TEST", "533"])
    torch.manual_seed(3)
    model = build_model(cfg).eval()
    perturb_(model, seed=4)
    path = tmp_path_factory.mktemp("here") / "model_final.pth"
    torch.save(dict(format="gn_detection", model=model.state_dict(), iteration=10), path)
    return cfg, model, path


def test_a_model_trained_here_gives_the_same_detections_in_detectron2_and_comes_back(tmp_path, trained_here):
    cfg, model, path = trained_here
    exported = tmp_path / "for_detectron2.pth"
    config = str(CONFIGS / "detectron2" / "mask_rcnn_R_50_FPN_3x_gn.yaml")
    assert main(["convert", str(path), str(exported), "--to", "detectron2", "--config-file", config]) == 0

    d2_cfg = gn_zoo_cfg(plugin=False)
    predictor = DefaultPredictor(d2_cfg)
    incompatible = DetectionCheckpointer(predictor.model)._load_model(load_torch_file(str(exported)))
    assert not incompatible.missing_keys and not incompatible.unexpected_keys
    for height, width, seed in [(240, 320, 5), (320, 256, 6)]:
        image = random_image(height, width, seed)
        with torch.no_grad():
            theirs = predictor(image)["instances"]
            mine = model([torch.from_numpy(image).permute(2, 0, 1).float()])[0]
        diff = compare_detections(theirs, mine)
        print(f"\nround trip {height}x{width}: {diff}")
        assert diff["count"] > 50 and diff["matched"] >= 0.98
        assert diff["box"] <= 0.5 and diff["score"] <= 1e-3 and diff["mask_iou"] >= 0.99

    back = build_model(cfg)
    assert load_weights(back, str(exported), input=InputConvention.from_config(cfg), strict=True).problems == []
    # every tensor comes back, but the background rows of the box and mask predictors: detectron2
    # has none, so they return as zeros, as a model trained here holds them (never trained)
    background_rows = {"roi_heads.box_predictor.bbox_pred.": 4, "roi_heads.mask_predictor.mask_fcn_logits.": 1}
    for key, value in model.state_dict().items():
        rows = next((n for prefix, n in background_rows.items() if key.startswith(prefix)), 0)
        assert torch.equal(back.state_dict()[key][rows:], value[rows:]), key
        assert not back.state_dict()[key][:rows].any(), key


def test_a_dicom_goes_through_the_plugin_mapper_as_through_gn_detections(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 4096, size=(40, 56)).astype(np.uint16)
    path = write_dicom(tmp_path / "film.dcm", pixels, bits_stored=12, WindowCenter=1500, WindowWidth=2000)
    record = dict(file_name=path, image_id=1, height=40, width=56, annotations=[])

    from detectron2.config import get_cfg as d2_get_cfg

    d2_cfg = d2_get_cfg()
    add_gn_detection_config(d2_cfg)
    d2_cfg.merge_from_list(["INPUT.FORMAT", "L", "INPUT.MIN_SIZE_TEST", "0", "INPUT.DICOM.WINDOW_MODE", "percentile"])
    theirs = GNDatasetMapper(d2_cfg, is_train=False)(record)["image"]

    ours_cfg = get_cfg()
    ours_cfg.merge_from_list(["INPUT.DICOM.WINDOW_MODE", "percentile"])
    ours = DatasetMapper(is_train=False, image_format="L", dicom=DicomReadOptions.from_config(ours_cfg))(record)["image"]
    assert theirs.shape == (1, 40, 56) and theirs.dtype == torch.float32
    assert torch.equal(theirs, ours)
    assert ours.unique().numel() > 100  # a real image, not a constant


def test_the_checkpointer_loads_torchvision_gn_weights_folded_into_a_gray_stem(tmp_path):
    import torchvision

    from gn_detection.detectron2 import GNDetectionCheckpointer

    torchvision_gn = torchvision.models.resnet50(norm_layer=lambda channels: torch.nn.GroupNorm(32, channels))
    perturb_(torchvision_gn, seed=7)
    path = tmp_path / "resnet50_gn.pth"
    torch.save(torchvision_gn.state_dict(), path)

    cfg = gn_zoo_cfg(plugin=True)
    cfg.merge_from_list(["INPUT.FORMAT", "L", "MODEL.PIXEL_MEAN", "[116.28]", "MODEL.PIXEL_STD", "[57.12]"])
    model = d2_build_model(cfg)
    GNDetectionCheckpointer(model, input=InputConvention.from_config(cfg)).load(str(path))
    bottom_up = model.backbone.bottom_up
    assert torch.equal(bottom_up.res3[1].conv2.weight, torchvision_gn.layer2[1].conv2.weight)
    assert torch.equal(bottom_up.res4[0].shortcut.norm.bias, torchvision_gn.layer3[0].downsample[1].bias)
    # the RGB stem (ImageNet's std per channel) folded into one channel of std 57.12
    scale = torch.tensor([57.12 / 58.395, 57.12 / 57.12, 57.12 / 57.375]).view(1, 3, 1, 1)
    expected = (torchvision_gn.conv1.weight * scale).sum(1, keepdim=True)
    assert bottom_up.stem.conv1.weight.shape == (64, 1, 7, 7)
    torch.testing.assert_close(bottom_up.stem.conv1.weight, expected)


def test_the_tool_takes_detectron2s_command_line(tmp_path):
    import subprocess
    import sys

    from tests.helpers import REPO, make_sample, write_coco_dataset

    data = tmp_path / "data"
    data.mkdir()
    json_file = write_coco_dataset(data, [make_sample(96, 128, 2, 3, seed=i) for i in range(2)])
    common = [
        "MODEL.DEVICE", "cpu", "DATASETS.COCO_INSTANCES", f"[['tool_set', '{json_file}', '{data}']]",
        "DATASETS.TRAIN", "('tool_set',)", "DATASETS.TEST", "('tool_set',)", "MODEL.ROI_HEADS.NUM_CLASSES", "3",
        "INPUT.FORMAT", "BGR", "MODEL.PIXEL_MEAN", "[103.53, 116.28, 123.675]", "MODEL.PIXEL_STD", "[1.0, 1.0, 1.0]",
        "INPUT.MIN_SIZE_TRAIN", "(96,)", "INPUT.MIN_SIZE_TEST", "96", "DATALOADER.NUM_WORKERS", "0",
        "SOLVER.MAX_ITER", "2", "SOLVER.WARMUP_ITERS", "0", "SOLVER.STEPS", "()", "TEST.FROC", "True",
        "OUTPUT_DIR", str(tmp_path / "run"),
    ]
    tool = [sys.executable, str(REPO / "tools" / "train_net_detectron2.py"), "--config-file",
            str(REPO / "configs" / "detectron2" / "plugin_synthetic_xray_R_18_FPN_gn.yaml")]
    trained = subprocess.run(tool + common, capture_output=True, text=True, cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert (tmp_path / "run" / "model_final.pth").is_file()
    evaluated = subprocess.run(
        tool + ["--eval-only"] + common + ["MODEL.WEIGHTS", str(tmp_path / "run" / "model_final.pth")],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "copypaste: Task: froc" in evaluated.stdout + evaluated.stderr


@pytest.mark.parametrize("norm", ["LN", "IN", "BRN"])
def test_the_papers_other_norms_build_in_every_key_of_the_plugin_and_train_a_step(norm):
    from detectron2.config import get_cfg as d2_get_cfg

    from gn_detection.layers import NORM_REGISTRY

    cfg = d2_get_cfg()
    add_gn_detection_config(cfg)
    cfg.merge_from_file(str(CONFIGS / "detectron2" / "plugin_synthetic_xray_R_18_FPN_gn.yaml"))
    keys = ["MODEL.RESNETS.NORM", "MODEL.FPN.NORM", "MODEL.ROI_BOX_HEAD.NORM", "MODEL.ROI_MASK_HEAD.NORM"]
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", "MODEL.BATCH_RENORM.R_MAX", "2.0"] + [x for k in keys for x in (k, norm)])
    torch.manual_seed(0)
    model = d2_build_model(cfg).train()
    kind = NORM_REGISTRY.get(norm)
    for part in (model.backbone.bottom_up.stem.conv1, model.backbone.fpn_lateral2, model.roi_heads.box_head.conv1,
                 model.roi_heads.mask_head.mask_fcn1):
        assert type(part.norm) is kind
    if norm == "BRN":
        assert model.roi_heads.box_head.conv1.norm.r_max == 2.0
    image = torch.from_numpy(random_image(128, 160, seed=3)[..., :1].copy()).permute(2, 0, 1).float()
    from detectron2.structures import BitMasks, Boxes, Instances

    masks = torch.zeros(2, 128, 160, dtype=torch.bool)
    masks[0, 20:60, 30:80], masks[1, 70:110, 90:140] = True, True
    instances = Instances((128, 160), gt_boxes=Boxes(torch.tensor([[30.0, 20, 80, 60], [90, 70, 140, 110]])),
                          gt_classes=torch.tensor([0, 1]), gt_masks=BitMasks(masks))
    from detectron2.utils.events import EventStorage

    with EventStorage():  # detectron2's heads log to it in training
        losses = model([{"image": image, "instances": instances}, {"image": image.flip(-1), "instances": instances}])
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.backbone.bottom_up.stem.conv1.norm.weight.grad.abs().sum() > 0
