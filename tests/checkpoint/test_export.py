"""gn_detection -> detectron2 names and class order, and back (without detectron2 installed)."""
import torch

from gn_detection import build_model, get_cfg
from gn_detection.checkpoint import InputConvention, load_torch_file, load_weights, to_detectron2
from gn_detection.cli import main
from tests.helpers import TINY_CONFIG


def _tiny():
    cfg = get_cfg()
    cfg.merge_from_file(str(TINY_CONFIG))
    torch.manual_seed(0)
    model = build_model(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape))
        for layer, rows in ((model.roi_heads.box_predictor.bbox_pred, 4), (model.roi_heads.mask_predictor.mask_fcn_logits, 1)):
            layer.weight[:rows] = 0  # background rows, never trained: detectron2 has none
            layer.bias[:rows] = 0
    return cfg, model


def test_detectron2_names_and_class_order():
    _, model = _tiny()
    ours = model.state_dict()
    theirs = to_detectron2(ours)
    assert "proposal_generator.rpn_head.conv.weight" in theirs and not any(k.startswith("rpn.") for k in theirs)
    num_classes = ours["roi_heads.box_predictor.cls_score.weight"].shape[0] - 1
    cls = theirs["roi_heads.box_predictor.cls_score.weight"]
    assert torch.equal(cls[-1], ours["roi_heads.box_predictor.cls_score.weight"][0])  # background last
    assert torch.equal(cls[:-1], ours["roi_heads.box_predictor.cls_score.weight"][1:])
    assert theirs["roi_heads.box_predictor.bbox_pred.weight"].shape[0] == 4 * num_classes
    assert theirs["roi_heads.mask_head.predictor.weight"].shape[0] == num_classes
    assert torch.equal(theirs["backbone.bottom_up.stem.conv1.weight"], ours["backbone.bottom_up.stem.conv1.weight"])


def test_convert_to_detectron2_and_back_gives_every_tensor(tmp_path):
    cfg, model = _tiny()
    source, exported = tmp_path / "model_final.pth", tmp_path / "d2.pth"
    torch.save(dict(format="gn_detection", model=model.state_dict()), source)
    assert main(["convert", str(source), str(exported), "--to", "detectron2", "--config-file", str(TINY_CONFIG)]) == 0
    written = load_torch_file(str(exported))
    assert written["__author__"] == "gn_detection" and "roi_heads.mask_head.predictor.weight" in written["model"]

    back = build_model(cfg)
    assert load_weights(back, str(exported), input=InputConvention.from_config(cfg), strict=True).problems == []
    for key, value in model.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key


def test_convert_prints_what_the_detectron2_config_must_set(tmp_path, capsys):
    cfg, model = _tiny()
    source = tmp_path / "model_final.pth"
    torch.save(dict(format="gn_detection", model=model.state_dict()), source)
    assert main(["convert", str(source), str(tmp_path / "d2.pth"), "--to", "detectron2", "--config-file", str(TINY_CONFIG)]) == 0
    out = capsys.readouterr().out
    assert f"INPUT.FORMAT {cfg.INPUT.FORMAT}, MODEL.PIXEL_MEAN {list(cfg.MODEL.PIXEL_MEAN)}" in out
