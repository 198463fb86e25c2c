import pickle

import numpy as np
import pytest
import torch

from gn_detection.checkpoint import weights
from gn_detection.cli import main
from tests.helpers import TINY_CONFIG


@pytest.mark.parametrize(
    "name, url",
    [
        (
            "detectron://ImageNetPretrained/47261647/R-50-GN.pkl",
            "https://dl.fbaipublicfiles.com/detectron/ImageNetPretrained/47261647/R-50-GN.pkl",
        ),
        (
            "detectron2://ImageNetPretrained/MSRA/R-101.pkl",
            "https://dl.fbaipublicfiles.com/detectron2/ImageNetPretrained/MSRA/R-101.pkl",
        ),
        ("https://example.org/w.pth", "https://example.org/w.pth"),
    ],
)
def test_short_names_and_urls_are_downloaded_through_iopath(name, url, monkeypatch, tmp_path):
    asked = []
    local = tmp_path / "cached.pkl"
    local.write_bytes(b"")

    def fake_get_local_path(self, path, **kwargs):
        asked.append(path)
        return str(local)

    from iopath.common.file_io import PathManager

    monkeypatch.setattr(PathManager, "get_local_path", fake_get_local_path)
    assert weights.resolve_weights_path(name) == str(local)
    assert asked == [url]


def test_a_missing_local_file_is_named():
    with pytest.raises(FileNotFoundError, match="MODEL.WEIGHTS='nowhere.pkl'"):
        weights.resolve_weights_path("nowhere.pkl")


def test_convert_command_prints_the_report_and_strict_fails(tmp_path, capsys):
    torch.manual_seed(0)
    from gn_detection import build_model, get_cfg

    cfg = get_cfg()
    cfg.merge_from_file(str(TINY_CONFIG))
    state = build_model(cfg).state_dict()
    d2 = {k.replace("rpn.head.", "proposal_generator.rpn_head."): v.numpy() for k, v in state.items()}
    d2 = {k.replace("mask_predictor.mask_fcn_logits.", "mask_head.predictor."): v for k, v in d2.items()}
    d2["pixel_mean"] = np.array([103.53, 116.28, 123.675], dtype=np.float32).reshape(3, 1, 1)
    d2["pixel_std"] = np.array([57.375, 57.12, 58.395], dtype=np.float32).reshape(3, 1, 1)
    d2["roi_heads.box_predictor.bbox_pred.weight"] = d2["roi_heads.box_predictor.bbox_pred.weight"][4:]
    d2["roi_heads.box_predictor.bbox_pred.bias"] = d2["roi_heads.box_predictor.bbox_pred.bias"][4:]
    d2["roi_heads.mask_head.predictor.weight"] = d2["roi_heads.mask_head.predictor.weight"][1:]
    d2["roi_heads.mask_head.predictor.bias"] = d2["roi_heads.mask_head.predictor.bias"][1:]
    src = tmp_path / "d2.pkl"
    src.write_bytes(pickle.dumps({"model": d2, "__author__": "test", "matching_heuristics": True}))
    dst = tmp_path / "out.pth"
    assert main(["convert", str(src), str(dst), "--strict", "--config-file", str(TINY_CONFIG)]) == 0
    out = capsys.readouterr().out
    assert "source format: detectron2" in out and "0 unused, 0 model tensors missing, 0 shape mismatches" in out
    assert torch.load(dst, weights_only=True)["format"] == "gn_detection"

    assert main(["convert", str(src), str(dst), "--format", "torchvision", "--strict", "--config-file", str(TINY_CONFIG)]) == 2
    assert "strict loading refused" in capsys.readouterr().err
    assert main(["convert", str(src), str(dst)]) == 0  # names only, without a model
    assert "loaded" in capsys.readouterr().out
