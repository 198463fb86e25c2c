"""The bad-input campaign: odd or broken inputs through the command line, as a user would give
them. Each case must end in one clear line: exit code 2, no traceback, the key or file named,
and nothing written where nothing should be."""
import json
import shutil

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from gn_detection.cli import main
from tests.bad_inputs.conftest import FAST, TINY, assert_clear_error, run_cli
from tests.helpers import make_sample, write_coco_dataset, write_dicom

CONFIG_CASES = [
    (["SOLVER.IMS_PER_BATCH", "0"], "SOLVER.IMS_PER_BATCH=0: expected an integer >= 1"),  # hung the sampler
    (["SOLVER.IMS_PER_BATCH", "-1"], "SOLVER.IMS_PER_BATCH=-1"),
    (["SOLVER.CHECKPOINT_PERIOD", "0"], "SOLVER.CHECKPOINT_PERIOD=0"),  # ZeroDivisionError
    (["SOLVER.LOG_PERIOD", "0"], "SOLVER.LOG_PERIOD=0"),
    (["INPUT.MIN_SIZE_TRAIN", "(0,)"], "INPUT.MIN_SIZE_TRAIN=(0,)"),  # an interpolate RuntimeError
    (["MODEL.PIXEL_STD", "[0.0, 0.0, 0.0]"], "MODEL.PIXEL_STD=[0.0, 0.0, 0.0]"),  # "lower BASE_LR"
    (["MODEL.ROI_HEADS.NUM_CLASSES", "0"], "MODEL.ROI_HEADS.NUM_CLASSES=0"),
    (["MODEL.ROI_HEADS.SCORE_THRESH_TEST", "1.5"], "MODEL.ROI_HEADS.SCORE_THRESH_TEST=1.5"),
    (["SOLVER.STEPS", "(20, 10)"], "SOLVER.STEPS=(20, 10)"),
]


@pytest.mark.parametrize("override, named", CONFIG_CASES, ids=[c[0][0] + "=" + c[0][1] for c in CONFIG_CASES])
def test_a_value_outside_its_domain_is_named_before_anything_runs(tmp_path, capsys, data, override, named):
    output = tmp_path / "run"
    code, err = run_cli(["train", "--config-file", TINY, *data[2], *FAST, "OUTPUT_DIR", output, *override], capsys)
    assert_clear_error(code, err, TINY, named)
    assert not output.exists()


def test_build_refuses_a_negative_class_count(capsys):
    code, err = run_cli(["build", "--config-file", TINY, "MODEL.ROI_HEADS.NUM_CLASSES", "-1"], capsys)
    assert_clear_error(code, err, "MODEL.ROI_HEADS.NUM_CLASSES=-1: expected an integer >= 1")


@pytest.mark.parametrize(
    "argv, named",
    [
        (["build", "--config-file", TINY, "--image-size", "0"], "--image-size: 0 is below 1"),
        (["benchmark", "--config-file", TINY, "--size", "0"], "--size: 0 is below 1"),
        (["benchmark", "--config-file", TINY, "--batch", "0"], "--batch: 0 is below 1"),
        (["benchmark", "--config-file", TINY, "--iters", "0"], "--iters: 0 is below 1"),
        (["visualize", "--config-file", TINY, "--dataset", "x", "--output", "o", "--confidence-threshold", "5"],
         "--confidence-threshold: 5 is not in [0, 1]"),
        (["visualize", "--config-file", TINY, "--dataset", "x", "--output", "o", "--confidence-threshold", "nan"],
         "--confidence-threshold: nan is not in [0, 1]"),
    ],
    ids=["build-size-0", "benchmark-size-0", "benchmark-batch-0", "benchmark-iters-0", "threshold-5", "threshold-nan"],
)
def test_a_bad_argument_is_refused_by_the_parser(capsys, argv, named):
    assert_clear_error(*run_cli(argv, capsys), named)


def test_eval_only_without_test_datasets_says_so(tmp_path, capsys, data):
    output = tmp_path / "run"
    argv = ["train", "--config-file", TINY, "--eval-only", *data[2], "DATASETS.TEST", "()", "OUTPUT_DIR", output]
    assert_clear_error(*run_cli(argv, capsys), "--eval-only: DATASETS.TEST is empty")
    assert not output.exists()


def test_an_output_that_cannot_be_written_is_named_before_the_work(tmp_path, capsys, data):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code, err = run_cli(["train", "--config-file", TINY, *data[2], *FAST, "OUTPUT_DIR", blocker / "run"], capsys)
    assert_clear_error(code, err, f"OUTPUT_DIR={blocker / 'run'}: cannot write there")
    code, err = run_cli(["visualize", "--config-file", TINY, "--dataset", "bad_inputs", "--output", blocker / "vis", *data[2]], capsys)
    assert_clear_error(code, err, f"--output={blocker / 'vis'}: cannot write there")
    argv = ["prepare", "--images", data[0], "--csv", tmp_path / "boxes.csv", "--output", blocker / "out.json"]
    assert_clear_error(*run_cli(argv, capsys), f"--output's folder={blocker}: cannot write there")


def test_training_into_a_finished_run_needs_resume(tmp_path, capsys, data):
    output = tmp_path / "run"
    argv = ["train", "--config-file", TINY, *data[2], *FAST, "TEST.EVAL_PERIOD", "0", "OUTPUT_DIR", output]
    assert run_cli(argv, capsys)[0] == 0
    before = sorted(p.name for p in output.iterdir())
    metrics = (output / "metrics.json").read_text()
    code, err = run_cli(argv, capsys)
    assert_clear_error(code, err, f"OUTPUT_DIR={output} holds a run already", "--resume")
    assert sorted(p.name for p in output.iterdir()) == before and (output / "metrics.json").read_text() == metrics


def test_weights_that_cannot_be_downloaded_say_what_to_do(tmp_path, capsys, data):
    url = "http://127.0.0.1:9/R-50-GN.pkl"  # nothing listens on port 9: refused at once, offline too
    code, err = run_cli(["train", "--config-file", TINY, *data[2], *FAST, "OUTPUT_DIR", tmp_path / "run", "MODEL.WEIGHTS", url], capsys)
    assert_clear_error(code, err, f"MODEL.WEIGHTS='{url}': cannot download", "set MODEL.WEIGHTS to the local file", "FVCORE_CACHE")


def test_corrupt_rle_counts_are_named_when_loading(tmp_path, capsys, data):
    root, json_file, opts = data
    coco = json.loads(open(json_file).read())
    coco["annotations"][1]["segmentation"] = {"size": [96, 128], "counts": "garbage"}
    open(json_file, "w").write(json.dumps(coco))
    code, err = run_cli(["train", "--config-file", TINY, *opts, *FAST, "INPUT.MASK_FORMAT", "bitmask", "OUTPUT_DIR", tmp_path / "run"], capsys)
    assert_clear_error(code, err, json_file, "annotation id=2", "RLE counts do not describe a 96x128 mask")
    assert not (tmp_path / "run" / "last_checkpoint").exists()


def _jpeg_ls_dataset(root, monkeypatch):
    """A COCO set of one JPEG-LS DICOM (pydicom's MR_small), read as on an install without the
    [medical] extra's decoders (the test extra installs them)."""
    source = get_testdata_file("MR_small_jpeg_ls_lossless.dcm", read=False, download=False)
    if source is None:
        pytest.skip("pydicom's test files are not installed")

    def no_decoder(self):
        raise RuntimeError("Unable to decode the pixel data as there are no pixel data decoders available")

    monkeypatch.setattr(pydicom.Dataset, "pixel_array", property(no_decoder))  # forked workers inherit it
    root.mkdir()
    shutil.copy(source, root / "mr.dcm")
    polygon = [8.0, 8.0, 40.0, 8.0, 40.0, 40.0, 8.0, 40.0]
    coco = dict(
        images=[dict(id=1, file_name="mr.dcm", height=64, width=64)],
        annotations=[dict(id=1, image_id=1, category_id=1, bbox=[8, 8, 32, 32], area=1024, iscrowd=0, segmentation=[polygon])],
        categories=[dict(id=1, name="organ")],
    )
    (root / "instances.json").write_text(json.dumps(coco))
    return ["DATASETS.COCO_INSTANCES", f"[['mr', '{root / 'instances.json'}', '{root}']]",
            "DATASETS.TRAIN", "('mr',)", "DATASETS.TEST", "()", "MODEL.ROI_HEADS.NUM_CLASSES", "1"]


@pytest.mark.parametrize("workers", ["0", "1"])  # a worker's error reaches the main process in torch's wrapper
def test_a_dicom_without_its_decoder_names_the_package_in_one_line(tmp_path, capsys, monkeypatch, workers):
    opts = _jpeg_ls_dataset(tmp_path / "mr", monkeypatch)
    code, err = run_cli(["train", "--config-file", TINY, *opts, *FAST, "DATALOADER.NUM_WORKERS", workers, "OUTPUT_DIR", tmp_path / "run"], capsys)
    assert_clear_error(code, err, "mr.dcm: cannot decode its pixel data", "JPEG-LS", "pip install")
    assert not (tmp_path / "run" / "last_checkpoint").exists()
    code, err = run_cli(["pixel-stats", "--config-file", TINY, *opts], capsys)
    assert_clear_error(code, err, "mr.dcm: cannot decode its pixel data", "pip install")


@pytest.mark.parametrize("damage", ["truncated", "no pixel data"])
def test_prepare_decodes_every_dicom_and_names_a_broken_one(tmp_path, capsys, damage):
    images = tmp_path / "images"
    images.mkdir()
    whole = write_dicom(images / "good.dcm", np.arange(48 * 64, dtype=np.uint16).reshape(48, 64))
    broken = images / "broken.dcm"
    if damage == "truncated":
        broken.write_bytes(open(whole, "rb").read()[:-500])
    else:
        ds = pydicom.dcmread(whole)
        del ds.PixelData
        ds.save_as(broken)
    (tmp_path / "boxes.csv").write_text("image,x1,y1,x2,y2,label\ngood.dcm,1,1,20,20,nodule\n")
    output = tmp_path / "instances.json"
    argv = ["prepare", "--images", images, "--csv", tmp_path / "boxes.csv", "--output", output]
    assert_clear_error(*run_cli(argv, capsys), "broken.dcm")
    assert not output.exists()


def test_an_extremely_elongated_image_trains_and_is_drawn(tmp_path, capsys, data):
    root, json_file, opts = data
    coco = json.loads(open(json_file).read())
    from PIL import Image

    Image.fromarray(np.full((2, 1000, 3), 90, dtype=np.uint8)).save(root / "strip.png")  # 2 x 1000 px
    coco["images"].append(dict(id=3, file_name="strip.png", height=2, width=1000))
    coco["annotations"].append(dict(id=99, image_id=3, category_id=1, bbox=[100, 0, 300, 2], area=600, iscrowd=0,
                                    segmentation=[[100, 0, 400, 0, 400, 2, 100, 2]]))
    open(json_file, "w").write(json.dumps(coco))
    output = tmp_path / "run"
    argv = ["train", "--config-file", TINY, *opts, *FAST, "SOLVER.MAX_ITER", "4", "SOLVER.IMS_PER_BATCH", "3",
            "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0", "OUTPUT_DIR", output]
    code, err = run_cli(argv, capsys)
    assert code == 0, err
    argv = ["visualize", "--config-file", TINY, "--weights", output / "model_final.pth", "--input", root / "strip.png",
            "--confidence-threshold", "0", "--output", tmp_path / "vis", *opts]
    assert run_cli(argv, capsys)[0] == 0
    assert Image.open(tmp_path / "vis" / "strip.png").size == (1000, 2)
