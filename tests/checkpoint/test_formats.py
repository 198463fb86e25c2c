"""Each source format: a file with the upstream names and shapes, made from a model's state dict
by an inverse mapping written here independently of the converters, loads back exactly."""
import pickle
import re

import numpy as np
import pytest
import torch
import torchvision

from gn_detection import build_model, get_cfg
from gn_detection.checkpoint import InputConvention, convert_checkpoint_file, convert_weights, load_weights
from gn_detection.checkpoint.weights import read_checkpoint
from tests.helpers import CONFIGS, TINY_CONFIG, make_sample


def tiny_model(**overrides):
    cfg = get_cfg()
    cfg.merge_from_file(str(TINY_CONFIG))
    for key, value in overrides.items():
        cfg.merge_from_list([key, value])
    torch.manual_seed(len(overrides))
    return cfg, build_model(cfg)


def randomized(model, seed=1):
    """The model's state with every tensor random, so misplaced tensors cannot agree by chance."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, v in model.state_dict().items():
        state[k] = torch.rand(v.shape, generator=g) + 0.5 if k.endswith("running_var") else torch.randn(v.shape, generator=g)
    return state


LAST_BLOCK = {2: 1, 3: 1, 4: 1, 5: 1}  # ResNet-18: two blocks a stage


def to_caffe2(name: str, norm: str) -> str:
    """gn_detection name -> Detectron blob name (``norm``: "gn" or "bn")."""
    module, param = name.rsplit(".", 1)
    is_norm = module.endswith(".norm")
    module = module[: -len(".norm")] if is_norm else module
    blob = {
        "backbone.bottom_up.stem.conv1": "res_conv1" if (is_norm and norm == "bn") else "conv1",
        "rpn.head.conv": "conv_rpn_fpn2",
        "rpn.head.objectness_logits": "rpn_cls_logits_fpn2",
        "rpn.head.anchor_deltas": "rpn_bbox_pred_fpn2",
        "roi_heads.box_head.fc1": "fc6",
        "roi_heads.box_predictor.cls_score": "cls_score",
        "roi_heads.box_predictor.bbox_pred": "bbox_pred",
        "roi_heads.mask_head.deconv": "conv5_mask",
        "roi_heads.mask_predictor.mask_fcn_logits": "mask_fcn_logits",
    }.get(module)
    if blob is None:
        patterns = (
            (r"^backbone\.bottom_up\.res(\d)\.(\d+)\.shortcut$", r"res\1_\2_branch1"),
            (r"^backbone\.bottom_up\.res(\d)\.(\d+)\.conv1$", r"res\1_\2_branch2a"),
            (r"^backbone\.bottom_up\.res(\d)\.(\d+)\.conv2$", r"res\1_\2_branch2b"),
            (r"^backbone\.bottom_up\.res(\d)\.(\d+)\.conv3$", r"res\1_\2_branch2c"),
            (r"^backbone\.fpn_lateral5$", f"fpn_inner_res5_{LAST_BLOCK[5]}_sum"),
            (r"^backbone\.fpn_lateral(\d)$", lambda m: f"fpn_inner_res{m[1]}_{LAST_BLOCK[int(m[1])]}_sum_lateral"),
            (r"^backbone\.fpn_output(\d)$", lambda m: f"fpn_res{m[1]}_{LAST_BLOCK[int(m[1])]}_sum"),
            (r"^roi_heads\.box_head\.conv(\d)$", r"head_conv\1"),
            (r"^roi_heads\.mask_head\.mask_fcn(\d)$", r"_[mask]_fcn\1"),
        )
        blob = next(re.sub(p, r, module) for p, r in patterns if re.match(p, module))
    if is_norm:
        return f"{blob}_{norm}_{'s' if param == 'weight' else 'b'}"
    return f"{blob}_{'w' if param == 'weight' else 'b'}"


def test_detectron_full_mask_rcnn_pickle_loads_every_tensor_exactly(tmp_path):
    cfg, model = tiny_model()
    state = randomized(model)
    blobs = {to_caffe2(k, "gn"): v.numpy() for k, v in state.items()}
    assert "res3_0_branch2b_gn_s" in blobs and "fpn_inner_res5_1_sum_w" in blobs and "_[mask]_fcn4_gn_b" in blobs
    blobs["res2_0_branch2a_w_momentum"] = np.zeros(3, dtype=np.float32)
    blobs["pred_w"] = np.zeros((1000, 10), dtype=np.float32)
    path = tmp_path / "detectron_full.pkl"
    path.write_bytes(pickle.dumps({"blobs": blobs}, protocol=2))

    report = load_weights(model, str(path), input=InputConvention.from_config(cfg), strict=True)
    assert report.source_format == "detectron"
    assert report.unused == [] and report.missing == [] and report.mismatched == []
    assert sorted(report.dropped) == ["pred_w", "res2_0_branch2a_w_momentum"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_detectron_bn_backbone_fills_statistics_and_leaves_heads_missing(tmp_path):
    cfg, model = tiny_model(**{"MODEL.RESNETS.NORM": "FrozenBN", "MODEL.PIXEL_STD": "[1.0, 1.0, 1.0]"})
    state = randomized(model)
    backbone = {k: v for k, v in state.items() if k.startswith("backbone.bottom_up.") and "running" not in k}
    blobs = {to_caffe2(k, "bn"): v.numpy() for k, v in backbone.items()}
    assert "res_conv1_bn_s" in blobs and "res2_0_branch2a_bn_b" in blobs
    path = tmp_path / "R-18-BN.pkl"
    path.write_bytes(pickle.dumps(blobs, protocol=2))
    report = load_weights(model, str(path), input=InputConvention.from_config(cfg))
    loaded = model.state_dict()
    for key in backbone:
        assert torch.equal(loaded[key], state[key]), key
    assert torch.equal(loaded["backbone.bottom_up.res3.0.conv1.norm.running_var"], torch.full((32,), 1 - 1e-5))
    # with the filled statistics, frozen BN is Caffe2's affine op: x * s + b
    norm = model.backbone.bottom_up.res3[0].conv1.norm
    x = torch.randn(1, 32, 4, 4)
    torch.testing.assert_close(norm(x), x * norm.weight.view(1, -1, 1, 1) + norm.bias.view(1, -1, 1, 1))
    assert len(report.filled) == 2 * sum(1 for k in backbone if k.endswith("norm.weight"))
    assert report.unused == [] and report.missing and all(not k.startswith("backbone.bottom_up.") for k in report.missing)
    assert not any("PIXEL" in n for n in report.notes)  # MSRA BN weights: std 1, as configured
    with pytest.raises(ValueError, match="missing model tensor roi_heads"):
        load_weights(model, str(path), input=InputConvention.from_config(cfg), strict=True)


def to_detectron2(state):
    out = {}
    for k, v in state.items():
        k = k.replace("rpn.head.", "proposal_generator.rpn_head.")
        k = k.replace("roi_heads.mask_predictor.mask_fcn_logits.", "roi_heads.mask_head.predictor.")
        if k.startswith("roi_heads.box_predictor.cls_score."):
            v = torch.cat([v[1:], v[:1]])  # background last
        elif k.startswith(("roi_heads.box_predictor.bbox_pred.",)):
            v = v[4:]  # no background deltas
        elif k.startswith("roi_heads.mask_head.predictor."):
            v = v[1:]
        out[k] = v
    out["pixel_mean"] = torch.tensor([103.53, 116.28, 123.675]).view(3, 1, 1)
    out["pixel_std"] = torch.tensor([57.375, 57.12, 58.395]).view(3, 1, 1)
    return out


@pytest.mark.parametrize("suffix", ["pkl", "pth"])
def test_detectron2_checkpoint_reorders_classes_exactly(tmp_path, suffix):
    cfg, source = tiny_model()
    state = randomized(source)
    source.load_state_dict(state)
    d2 = to_detectron2(state)
    path = tmp_path / f"model_final.{suffix}"
    if suffix == "pkl":
        path.write_bytes(pickle.dumps({"model": {k: v.numpy() for k, v in d2.items()}, "__author__": "test"}))
    else:
        torch.save({"model": d2, "iteration": 5, "__author__": "test"}, path)
    _, target = tiny_model(**{"SEED": "3"})
    report = load_weights(target, str(path), input=InputConvention.from_config(cfg), strict=True)
    assert report.source_format == "detectron2" and sorted(report.dropped) == ["pixel_mean", "pixel_std"]
    loaded = target.state_dict()
    # detectron2's class k (0-based, background last) is our class k + 1; background is ours 0.
    d2_scores = d2["roi_heads.box_predictor.cls_score.weight"]
    assert torch.equal(loaded["roi_heads.box_predictor.cls_score.weight"][2], d2_scores[1])
    assert torch.equal(loaded["roi_heads.box_predictor.cls_score.weight"][0], d2_scores[-1])
    assert torch.equal(loaded["roi_heads.box_predictor.bbox_pred.weight"][:4], torch.zeros(4, 64))
    assert torch.equal(loaded["roi_heads.mask_predictor.mask_fcn_logits.bias"][0], torch.tensor(0.0))
    for key, value in state.items():
        if not key.startswith(("roi_heads.box_predictor.bbox_pred", "roi_heads.mask_predictor")):
            assert torch.equal(loaded[key], value), key

    # Same image, same detections: background rows never produce a detection. Initialized
    # weights with distinct class rows keep the outputs sane.
    _, source = tiny_model(**{"MODEL.ROI_HEADS.SCORE_THRESH_TEST": "0.0"})
    with torch.no_grad():
        source.roi_heads.box_predictor.cls_score.weight.normal_(std=0.05)
        source.roi_heads.box_predictor.cls_score.bias.normal_(std=0.5)
    d2 = {k: v.numpy() for k, v in to_detectron2(source.state_dict()).items()}
    path.write_bytes(pickle.dumps({"model": d2, "__author__": "test"}))
    _, target = tiny_model(**{"MODEL.ROI_HEADS.SCORE_THRESH_TEST": "0.0", "SEED": "3"})
    load_weights(target, str(path), input=InputConvention.from_config(cfg), strict=True)
    source.eval(), target.eval()
    image = make_sample(96, 128, 2, 3, seed=4)[0]
    with torch.no_grad():
        a, b = source([image])[0], target([image])[0]
    assert len(a["labels"]) > 0 and len(set(a["labels"].tolist())) > 1
    assert torch.equal(a["labels"], b["labels"])
    torch.testing.assert_close(a["boxes"], b["boxes"])
    torch.testing.assert_close(a["scores"], b["scores"])


def to_torchvision(name):
    n = name.replace("backbone.bottom_up.stem.conv1.norm.", "bn1.").replace("backbone.bottom_up.stem.conv1.", "conv1.")
    n = re.sub(r"^backbone\.bottom_up\.res(\d)\.", lambda m: f"layer{int(m[1]) - 1}.", n)
    n = n.replace(".shortcut.norm.", ".downsample.1.").replace(".shortcut.", ".downsample.0.")
    return re.sub(r"\.conv(\d)\.norm\.", r".bn\1.", n)


def test_torchvision_resnet_matches_our_backbone_on_the_same_image_in_bgr(tmp_path):
    """torchvision's ResNet-50 takes RGB; our GN configs take BGR: the stem is permuted."""
    tv = torchvision.models.resnet50()
    with torch.no_grad():
        for m in tv.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    tv.eval()
    path = tmp_path / "resnet50.pth"
    torch.save(tv.state_dict(), path)

    cfg = get_cfg()
    cfg.merge_from_file(str(CONFIGS / "COCO-GN" / "mask_rcnn_R_50_FPN_2x_bnstar.yaml"))
    cfg.merge_from_list(["MODEL.RESNETS.STRIDE_IN_1X1", "False", "MODEL.PIXEL_STD", "[57.375, 57.120, 58.395]"])
    model = build_model(cfg).eval()
    report = load_weights(model, str(path), input=InputConvention.from_config(cfg))
    assert report.source_format == "torchvision"
    assert report.unused == [] and sorted(report.dropped) == sorted(
        ["fc.bias", "fc.weight"] + [k for k in tv.state_dict() if k.endswith("num_batches_tracked")]
    )
    assert not [k for k in report.missing if k.startswith("backbone.bottom_up.")]
    assert ("backbone.bottom_up.stem.conv1.weight", "input channels reversed (RGB -> BGR)") in report.fixed
    assert not any("PIXEL" in n for n in report.notes)

    rgb = torch.rand(1, 3, 64, 96) * 255
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    with torch.no_grad():
        x = tv.maxpool(tv.relu(tv.bn1(tv.conv1((rgb - mean) / std))))
        expected = tv.layer4(tv.layer3(tv.layer2(tv.layer1(x))))
        bgr = rgb.flip(1)
        ours = model.backbone.bottom_up(model.transform.normalize(bgr[0])[None])["res5"]
    # Our backbone runs NHWC (MODEL.CHANNELS_LAST), whose convolutions sum in another order; a
    # wrongly permuted stem would be off by far more.
    torch.testing.assert_close(ours, expected, rtol=1e-3, atol=1e-3)


def test_timm_resnet_gn_names_load_exactly(tmp_path):
    cfg = get_cfg()
    cfg.merge_from_file(str(CONFIGS / "COCO-GN" / "mask_rcnn_R_50_FPN_3x_gn.yaml"))
    model = build_model(cfg)
    state = randomized(model)
    timm_state = {to_torchvision(k): v for k, v in state.items() if k.startswith("backbone.bottom_up.")}
    assert "layer1.0.downsample.1.weight" in timm_state and "bn1.weight" in timm_state
    timm_state["fc.weight"] = torch.zeros(1000, 2048)
    path = tmp_path / "resnet50_gn.a1h_in1k.pth"
    torch.save(timm_state, path)
    report = load_weights(model, str(path), input=InputConvention.from_config(cfg))
    assert report.source_format == "timm" and report.unused == [] and report.dropped == ["fc.weight"]
    loaded = model.state_dict()
    for key in state:
        if key.startswith("backbone.bottom_up.") and key != "backbone.bottom_up.stem.conv1.weight":
            assert torch.equal(loaded[key], state[key]), key
    # timm takes RGB, the GN configs BGR: the stem's input channels are reversed.
    assert torch.equal(loaded["backbone.bottom_up.stem.conv1.weight"], state["backbone.bottom_up.stem.conv1.weight"].flip(1))


def test_mismatches_are_reported_with_both_shapes_and_strict_refuses(tmp_path):
    cfg, model = tiny_model()
    _, wider = tiny_model(**{"MODEL.FPN.OUT_CHANNELS": "64", "MODEL.GROUP_NORM.NUM_GROUPS": "8"})
    path = tmp_path / "wider.pth"
    torch.save({"model": wider.state_dict(), "format": "gn_detection"}, path)
    report = load_weights(model, str(path), input=InputConvention.from_config(cfg))
    assert ("backbone.fpn_lateral2.weight", "backbone.fpn_lateral2.weight", (64, 16, 1, 1), (32, 16, 1, 1)) in report.mismatched
    assert "backbone.fpn_lateral2.weight" not in report.missing
    with pytest.raises(ValueError, match=r"shape mismatch backbone\.fpn_lateral2\.weight \(64, 16, 1, 1\)"):
        load_weights(model, str(path), input=InputConvention.from_config(cfg), strict=True)


def test_convert_writes_a_checkpoint_that_loads_as_our_format(tmp_path):
    cfg, model = tiny_model()
    state = randomized(model)
    blobs = {to_caffe2(k, "gn"): v.numpy() for k, v in state.items()}
    src, dst = tmp_path / "src.pkl", tmp_path / "converted.pth"
    src.write_bytes(pickle.dumps({"blobs": blobs}))
    report = convert_checkpoint_file(str(src), str(dst), model=model, input=InputConvention.from_config(cfg), strict=True)
    assert report.problems == []
    _, fresh = tiny_model(**{"SEED": "9"})
    again = load_weights(fresh, str(dst), input=InputConvention.from_config(cfg), strict=True)
    assert again.source_format == "gn_detection"
    assert all(torch.equal(fresh.state_dict()[k], state[k]) for k in state)


def test_unknown_format_and_malicious_weights_are_refused(tmp_path):
    cfg, model = tiny_model()
    odd = tmp_path / "odd.pth"
    torch.save({"encoder.w": torch.zeros(1)}, odd)
    with pytest.raises(ValueError, match="cannot tell which format"):
        load_weights(model, str(odd), input=InputConvention.from_config(cfg))

    class Payload:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {tmp_path}/pwned",))

    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"blobs": {"conv1_w": Payload()}}))
    with pytest.raises(ValueError, match="system"):
        load_weights(model, str(evil), input=InputConvention.from_config(cfg))
    assert not (tmp_path / "pwned").exists()


def test_a_colour_stem_folds_into_a_gray_one_that_sees_gray_images_as_the_colour_model_does(tmp_path):
    colour_cfg, colour = tiny_model(**{"MODEL.PIXEL_MEAN": "[100.0, 100.0, 100.0]", "MODEL.PIXEL_STD": "[50.0, 60.0, 70.0]"})
    colour.eval()
    path = tmp_path / "colour.pth"
    payload = {"model": colour.state_dict(), "format": "gn_detection"}
    payload["input"] = {"format": "BGR", "pixel_mean": [100.0, 100.0, 100.0], "pixel_std": [50.0, 60.0, 70.0]}
    torch.save(payload, path)

    gray_cfg, gray = tiny_model(**{"INPUT.FORMAT": "L", "MODEL.PIXEL_MEAN": "[100.0]", "MODEL.PIXEL_STD": "[55.0]"})
    assert gray.backbone.bottom_up.stem.conv1.in_channels == 1
    report = load_weights(gray, str(path), input=InputConvention.from_config(gray_cfg), strict=True)
    assert ("backbone.bottom_up.stem.conv1.weight", "BGR stem folded into one gray channel") in report.fixed
    gray.eval()
    image = make_sample(96, 128, 2, 3, seed=5)[0].mean(dim=0, keepdim=True)
    with torch.no_grad():
        expected = colour.backbone(colour.transform.normalize(image.expand(3, -1, -1))[None])
        folded = gray.backbone(gray.transform.normalize(image)[None])
    for level in expected:
        torch.testing.assert_close(folded[level], expected[level], rtol=1e-4, atol=1e-4)


def _to_mmdet(name: str) -> str:
    """gn_detection backbone name -> mmdetection's GN ResNet name (as in open-mmlab://jhu/resnet50_gn_ws)."""
    name = name.replace("backbone.bottom_up.stem.conv1.norm.", "gn1.").replace("backbone.bottom_up.stem.", "")
    name = re.sub(r"backbone\.bottom_up\.res(\d)\.", lambda m: f"layer{int(m.group(1)) - 1}.", name)
    name = name.replace(".shortcut.norm.", ".downsample.1.").replace(".shortcut.", ".downsample.0.")
    return re.sub(r"\.conv(\d)\.norm\.", r".gn\1.", name)


def test_mmdetection_gn_ws_weights_load_into_the_ws_config(tmp_path):
    cfg = get_cfg()
    cfg.merge_from_file(str(CONFIGS / "COCO-GN" / "mask_rcnn_R_50_FPN_2x_gn_ws.yaml"))
    cfg.MODEL.DEVICE = "meta"  # names and shapes are all this needs
    with torch.device("meta"):
        model = build_model(cfg)
    g = torch.Generator().manual_seed(0)
    state = {k: torch.randn(v.shape, generator=g) for k, v in model.state_dict().items() if k.startswith("backbone.bottom_up.")}
    mmdet = {_to_mmdet(k): v for k, v in state.items()}
    assert {"conv1.weight", "gn1.weight", "layer1.0.gn3.bias", "layer4.2.conv3.weight", "layer3.0.downsample.1.weight"} <= set(mmdet)
    mmdet.update({"fc.weight": torch.zeros(1000, 2048), "fc.bias": torch.zeros(1000)})
    path = tmp_path / "resnet50_gn_ws-15beedd8.pth"
    torch.save({"state_dict": mmdet, "meta": {}}, path)

    tensors, fmt, source_input = read_checkpoint(str(path))
    assert fmt.name == "mmdet" and source_input.format == "RGB"
    converted, report, _ = convert_weights(str(path), input=InputConvention.from_config(cfg))
    assert report.source_format == "mmdet" and sorted(report.dropped) == ["fc.bias", "fc.weight"] and report.unused == []
    for key, value in state.items():
        expected = value.flip(1) if key == "backbone.bottom_up.stem.conv1.weight" else value  # RGB -> this config's BGR
        assert torch.equal(converted[key], expected), key


def test_the_ws_authors_gn_ws_release_loads_into_the_ws_config(tmp_path):
    """R-50-GN-WS.pth.tar from the WS authors' pytorch-classification: torchvision's names, GN as
    bn<k>, saved from a DataParallel model with its optimizer, epoch and accuracy."""
    cfg = get_cfg()
    cfg.merge_from_file(str(CONFIGS / "COCO-GN" / "mask_rcnn_R_101_FPN_2x_gn_ws.yaml"))
    cfg.MODEL.DEVICE = "meta"
    with torch.device("meta"):
        model = build_model(cfg)
    g = torch.Generator().manual_seed(0)
    state = {k: torch.randn(v.shape, generator=g) for k, v in model.state_dict().items() if k.startswith("backbone.bottom_up.")}
    released = {"module." + to_torchvision(k): v for k, v in state.items()}
    assert {"module.bn1.weight", "module.layer3.22.bn3.bias", "module.layer1.0.downsample.1.weight"} <= set(released)
    released.update({"module.fc.weight": torch.zeros(1000, 2048), "module.fc.bias": torch.zeros(1000)})
    optimizer = {"state": {0: {"momentum_buffer": torch.zeros(3)}}, "param_groups": [{"lr": 0.001, "params": [0]}]}
    path = tmp_path / "R-101-GN-WS.pth.tar"
    torch.save({"epoch": 100, "arch": "l_resnet101", "state_dict": released, "best_acc": 77.9, "optimizer": optimizer}, path)

    converted, report, _ = convert_weights(str(path), input=InputConvention.from_config(cfg))
    assert sorted(report.dropped) == ["fc.bias", "fc.weight"] and report.unused == []
    for key, value in state.items():
        expected = value.flip(1) if key == "backbone.bottom_up.stem.conv1.weight" else value  # RGB -> BGR
        assert torch.equal(converted[key], expected), key
