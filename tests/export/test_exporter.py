"""Exported models (ONNX in onnxruntime, torch.export programs) give the eager model's detections,
read DICOM as training does, and predict without torch."""
import json
import os
import shutil
import subprocess
import sys

import highdicom as hd
import numpy as np
import onnx
import onnx.numpy_helper
import pydicom
import pytest
import torch
from PIL import Image
from pydicom.uid import generate_uid

from gn_detection import build_model, get_cfg
from gn_detection.cli import main
from gn_detection.data.mapper import DatasetMapper
from gn_detection.deploy.predictor import MODEL_FILES, ExportedPredictor
from gn_detection.engine.predictor import Predictor
from gn_detection.export import export_model
from gn_detection.export.check import compare_with_eager
from gn_detection.layers import GroupNorm
from tests.helpers import REPO, TINY_CONFIG, write_dicom

SIZES = [(96, 128), (120, 90), (200, 160), (90, 170), (333, 251)]  # the tiny config resizes to 128-160 px
WINDOW = ["INPUT.DICOM.WINDOW_MODE", "fixed", "INPUT.DICOM.WINDOW_CENTER", "1500.0", "INPUT.DICOM.WINDOW_WIDTH", "1000.0"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A random-weight tiny model, its weights file, its ONNX and pt2 exports, and test images."""
    root = tmp_path_factory.mktemp("export")
    cfg = get_cfg()
    cfg.merge_from_file(str(TINY_CONFIG))
    cfg.merge_from_list(WINDOW)
    torch.manual_seed(0)
    model = build_model(cfg)
    with torch.no_grad():  # off its initial 0, which ONNX's optimizer folds away: a test below changes it in the graph
        model.roi_heads.box_predictor.cls_score.bias.normal_(0.0, 0.01)
    weights = str(root / "weights.pth")
    torch.save({"model": model.state_dict()}, weights)
    rng = np.random.default_rng(0)
    images = []
    for height, width in SIZES:
        images.append(str(root / f"image_{height}x{width}.png"))
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(images[-1])
    ramp = (np.add.outer(np.arange(140), np.arange(110)) * 13 % 3000).astype(np.uint16)
    images.append(write_dicom(root / "film.dcm", ramp, bits_stored=12, StudyInstanceUID=generate_uid(),
                              SeriesInstanceUID=generate_uid()))
    results = {fmt: export_model(cfg, weights, fmt, str(root / fmt), ["a", "b", "c"]) for fmt in ("onnx", "pt2")}
    return dict(cfg=cfg, weights=weights, images=images, root=root, results=results)


@pytest.fixture(scope="module")
def pt2_program(exported):
    """The pt2 program, loaded once: a load takes 16 s here."""
    return torch.export.load(exported["results"]["pt2"]["path"])


@pytest.fixture
def pt2_loaded_once(exported, pt2_program, monkeypatch):
    """ExportedPredictor on the exported pt2 folder gets the program loaded once."""
    path, load = exported["results"]["pt2"]["path"], torch.export.load
    monkeypatch.setattr(torch.export, "load", lambda p: pt2_program if os.path.samefile(p, path) else load(p))


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_exported_detections_are_the_eager_models(exported, pt2_loaded_once, fmt):
    eager = Predictor(exported["cfg"], exported["weights"])
    predictor = ExportedPredictor(str(exported["root"] / fmt))
    for path in exported["images"]:
        _, expected = eager(path)
        image, got = predictor(path)
        assert image.shape[:2] == expected["masks"].shape[-2:]
        above = expected["scores"] > 0.05
        assert (got["scores"] > 0.05).sum() == above.sum() > 0, path
        n = len(expected["scores"])
        assert len(got["scores"]) == n
        np.testing.assert_allclose(got["boxes"], expected["boxes"].numpy(), atol=0.5)
        np.testing.assert_allclose(got["scores"], expected["scores"].numpy(), atol=1e-3)
        np.testing.assert_array_equal(got["labels"], expected["labels"].numpy())
        ours, theirs = got["masks"] >= 0.5, expected["masks"][:, 0].numpy() >= 0.5
        iou = (ours & theirs).sum((1, 2)) / np.maximum((ours | theirs).sum((1, 2)), 1)
        assert iou.min() >= 0.99, (path, iou.min())


def test_onnx_graph_holds_one_group_normalization_per_gn_layer(exported):
    graph = onnx.load(exported["results"]["onnx"]["path"]).graph
    num_gn = sum(isinstance(m, GroupNorm) for m in build_model(exported["cfg"]).modules())
    assert sum(node.op_type == "GroupNormalization" for node in graph.node) == num_gn > 0
    (image,) = graph.input
    height, width = image.type.tensor_type.shape.dim[2:]
    assert height.dim_param and width.dim_param  # a dynamic image size


def test_deploy_json_carries_the_dicom_window_and_input(exported):
    predictor = ExportedPredictor(str(exported["root"] / "onnx"))
    metadata = predictor.metadata
    assert metadata["classes"] == ["a", "b", "c"] and metadata["format"] == "onnx"
    cfg = exported["cfg"]
    assert metadata["input"]["min_size"] == cfg.INPUT.MIN_SIZE_TEST and metadata["input"]["format"] == cfg.INPUT.FORMAT
    film = exported["images"][-1]
    as_trained = DatasetMapper(**DatasetMapper.from_config(cfg, is_train=False)).read(film)
    np.testing.assert_array_equal(predictor.read(film), as_trained)
    default_cfg = get_cfg()
    default_cfg.merge_from_file(str(TINY_CONFIG))
    assert not np.array_equal(DatasetMapper(**DatasetMapper.from_config(default_cfg, is_train=False)).read(film), as_trained)


_WITHOUT_TORCH = """
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision"):
            raise ImportError("torch is not installed here")
sys.meta_path.insert(0, NoTorch())
from gn_detection.cli import main
code = main(sys.argv[1:])
assert not any(m.split(".")[0] == "torch" for m in sys.modules), "torch was imported"
sys.exit(code)
"""


def test_predict_runs_without_torch(exported, tmp_path):
    output = tmp_path / "predictions"
    inputs = [exported["images"][0], exported["images"][-1]]
    command = [sys.executable, "-c", _WITHOUT_TORCH, "predict", "--model", str(exported["root"] / "onnx"),
               "--input", *inputs, "--output", str(output), "--confidence-threshold", "0", "--dicom-seg"]
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    results = json.loads((output / "detections.json").read_text())
    predictor = ExportedPredictor(str(exported["root"] / "onnx"))
    for image_id, path in enumerate(inputs, start=1):
        _, expected = predictor(path)
        mine = [r for r in results if r["image_id"] == image_id]
        assert [r["file_name"] for r in mine] == [os.path.basename(path)] * len(expected["scores"])
        np.testing.assert_allclose([r["score"] for r in mine], expected["scores"], rtol=1e-6)
        x0, y0, x1, y1 = expected["boxes"][0]
        np.testing.assert_allclose(mine[0]["bbox"], [x0, y0, x1 - x0, y1 - y0], rtol=1e-5)
        assert (output / (os.path.splitext(os.path.basename(path))[0] + ".png")).is_file()
    # the DICOM film's masks, one segment per class, as a viewer would read them
    seg = hd.seg.segread(output / "film_seg.dcm")
    film = pydicom.dcmread(inputs[1])
    assert seg.StudyInstanceUID == film.StudyInstanceUID
    pixels = seg.get_pixels_by_source_instance([film.SOPInstanceUID], segment_numbers=[1, 2, 3])[0].astype(bool)
    _, on_film = predictor(inputs[1])
    for label in (1, 2, 3):
        union = (on_film["masks"][on_film["labels"] == label] >= 0.5).any(axis=0)
        np.testing.assert_array_equal(pixels[..., label - 1], union)
    assert not (output / "image_96x128_seg.dcm").exists()  # PNG inputs get none


def test_predict_rle_decodes_to_the_mask():
    import pycocotools.mask as mask_util

    from gn_detection.commands.predict import uncompressed_rle

    mask = np.zeros((7, 5), dtype=bool)
    mask[0, 0] = mask[2:5, 1:4] = mask[6, 4] = True
    rle = uncompressed_rle(mask)
    decoded = mask_util.decode(mask_util.frPyObjects(rle, *rle["size"]))
    np.testing.assert_array_equal(decoded, mask)


def test_an_image_resized_below_the_graphs_smallest_side_is_refused(exported, pt2_loaded_once):
    predictor = ExportedPredictor(str(exported["root"] / "pt2"))
    with pytest.raises(ValueError, match=r"a 300x77 image resizes to 160x41, below the exported graph's smallest side"):
        predictor.predict(np.zeros((77, 300, 3), dtype=np.float32))


def test_predict_names_a_folder_that_is_not_an_export(tmp_path, capsys):
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(image)
    assert main(["predict", "--model", str(tmp_path), "--input", str(image), "--output", str(tmp_path / "o")]) == 2
    assert "deploy.json: no such file" in capsys.readouterr().err


def test_export_command_checks_against_the_eager_model(exported, tmp_path, capsys):
    output = tmp_path / "pt2"
    opts = [item for pair in zip(WINDOW[::2], WINDOW[1::2]) for item in pair]
    assert main(["export", "--config-file", str(TINY_CONFIG), "--weights", exported["weights"], "--format", "pt2",
                 "--output", str(output), "--check", *exported["images"][-2:], "--repeats", "1", *opts]) == 0
    report = json.loads((output / "check.json").read_text())
    assert [row["image"] for row in report["images"]] == exported["images"][-2:]
    for row in report["images"]:
        assert row["eager_detections"] == row["exported_detections"] > 0
        assert row["max_box_difference"] <= 0.5 and row["max_score_difference"] <= 1e-3
        assert row["min_mask_iou"] >= 0.99 and row["unpaired_eager"] == row["unpaired_exported"] == 0
    assert set(report["seconds_per_image"]) == {"eager_fp32", "eager_bf16", "exported"}
    assert report["speedup_over_eager_fp32"] == pytest.approx(
        report["seconds_per_image"]["eager_fp32"] / report["seconds_per_image"]["exported"])
    assert report["export"]["bytes"] == os.path.getsize(output / "model.pt2")
    assert "seconds per image" in capsys.readouterr().out


def test_a_check_without_repeats_compares_the_detections_only(exported):
    report = compare_with_eager(exported["cfg"], exported["weights"], str(exported["root"] / "onnx"),
                                exported["images"][:1], repeats=0)
    assert list(report) == ["images"] and report["images"][0]["eager_detections"] > 0
    assert report["images"][0]["eager_detections"] == report["images"][0]["exported_detections"]


def test_an_image_without_detections_gives_none_in_onnx(exported, tmp_path):
    """ONNX Runtime cannot run GN on zero RoIs: the graph must not reach the mask head's GN then.
    The exported graph is run with every foreground class's score bias set to -100."""
    shutil.copytree(exported["root"] / "onnx", tmp_path / "onnx")
    path = str(tmp_path / "onnx" / MODEL_FILES["onnx"])
    model = onnx.load(path)
    (bias,) = [t for t in model.graph.initializer if t.name.endswith("cls_score.bias")]
    values = onnx.numpy_helper.to_array(bias).copy()
    values[1:] = -100.0
    bias.CopyFrom(onnx.numpy_helper.from_array(values, bias.name))
    onnx.save(model, path)
    detections = ExportedPredictor(str(tmp_path / "onnx")).predict(np.full((100, 120, 3), 128, dtype=np.float32))
    assert detections["boxes"].shape == (0, 4) and detections["masks"].shape == (0, 100, 120)


def test_an_image_without_detections_gives_none_in_pt2(exported, pt2_program, pt2_loaded_once):
    """torchvision tells torch.export that NMS keeps at least 2 boxes, which an image with no
    detection contradicts. The exported program is run with every foreground class's score bias
    set to -100."""
    (name,) = [n for n in pt2_program.state_dict if n.endswith("cls_score.bias")]
    bias = pt2_program.state_dict[name]
    kept = bias.clone()
    try:
        with torch.no_grad():
            bias[1:] = -100.0
        predictor = ExportedPredictor(str(exported["root"] / "pt2"))
        detections = predictor.predict(np.full((100, 120, 3), 128, dtype=np.float32))
    finally:
        with torch.no_grad():
            bias.copy_(kept)
    assert detections["boxes"].shape == (0, 4) and detections["masks"].shape == (0, 100, 120)
