import json
import os

import numpy as np
import torch
from PIL import Image

from gn_detection.cli import main
from gn_detection.data.catalog import get_dataset_spec
from gn_detection.studies.classification import build_classifier, crops_of


def test_crops_are_each_instance_with_its_label(small_builtin_datasets):
    images, labels = crops_of("shapes_val", size=24)
    assert images.shape[1:] == (3, 24, 24) and len(images) == len(labels) >= 4
    assert set(labels.tolist()) <= {0, 1, 2}
    torch.testing.assert_close(images.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4, rtol=0)


def test_each_crop_is_the_square_around_its_instances_box(small_builtin_datasets):
    """Against crops cut independently from the COCO file's XYWH boxes (the records hold XYXY);
    crops_of standardizes per channel, so they must agree up to a scale and shift: correlation 1."""
    json_file, image_root = get_dataset_spec("shapes_val").locate()
    coco = json.loads(open(json_file).read())
    files = {image["id"]: image["file_name"] for image in coco["images"]}
    expected = []
    for a in coco["annotations"]:  # the shapes JSON lists them image by image, as load_coco_json keeps them
        x, y, w, h = a["bbox"]
        side = max(w, h)
        x0, y0 = max(0, int(x + w / 2 - side / 2)), max(0, int(y + h / 2 - side / 2))
        image = np.asarray(Image.open(os.path.join(image_root, files[a["image_id"]])).convert("RGB"))
        patch = torch.from_numpy(image[y0 : y0 + int(side), x0 : x0 + int(side)].copy()).permute(2, 0, 1)
        expected.append(torch.nn.functional.interpolate(patch[None].float(), size=(16, 16), mode="bilinear")[0])
    crops, _ = crops_of("shapes_val", size=16)
    assert len(crops) == len(expected)
    correlations = [np.corrcoef(c.flatten(), p.flatten())[0, 1] for crop, patch in zip(crops, expected)
                    for c, p in zip(crop, patch)]
    assert min(correlations) > 0.999


def test_bn_and_gn_classifiers_differ_only_in_their_norms():
    bn, gn = build_classifier("BN", 3), build_classifier("GN", 3)
    assert [type(m).__name__ for m in bn.modules() if "Norm" in type(m).__name__][:2] == ["BatchNorm2d", "BatchNorm2d"]
    assert all(type(m).__name__ != "BatchNorm2d" for m in gn.modules())
    assert sum(p.numel() for p in bn.parameters()) == sum(p.numel() for p in gn.parameters())


def test_the_classification_study_runs_end_to_end(small_builtin_datasets, tmp_path, capsys):
    args = ["study-classification", "--norms", "BN", "GN", "--batches", "4", "2", "--epochs", "1",
            "--output", str(tmp_path / "cls")]
    assert main(args) == 0
    rows = json.loads((tmp_path / "cls" / "classification.json").read_text())
    assert [(r["norm"], r["batch"]) for r in rows] == [("BN", 4), ("BN", 2), ("GN", 4), ("GN", 2)]
    num_val = len(crops_of("shapes_val")[0])  # an error is a count of those crops
    assert all(abs(r["error"] * num_val / 100 - round(r["error"] * num_val / 100)) < 1e-6 for r in rows)
    assert "| GN | 2 |" in capsys.readouterr().out and (tmp_path / "cls" / "classification.png").stat().st_size > 1000

    # Started again in the same folder: finished runs are kept, a missing one is run.
    runs = tmp_path / "cls" / "runs"
    kept = json.loads((runs / "GN_b4_s0.json").read_text())
    (runs / "GN_b4_s0.json").write_text(json.dumps(dict(kept, error=99.5)))
    (runs / "BN_b2_s0.json").unlink()
    assert main(args) == 0
    again = {(r["norm"], r["batch"]): r["error"] for r in json.loads((tmp_path / "cls" / "classification.json").read_text())}
    assert again[("GN", 4)] == 99.5 and (runs / "BN_b2_s0.json").is_file()
    capsys.readouterr()
    assert main(args[:-3] + ["2", "--output", str(tmp_path / "cls")]) == 2
    assert "BN_b4_s0.json: this run trained 1 epochs, this study asks for 2: use another --output" in capsys.readouterr().err
