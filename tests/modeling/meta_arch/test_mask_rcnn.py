import pytest
import torch

from gn_detection import build_model
from gn_detection.layers import GroupNorm
from gn_detection.utils.registry import UnknownNameError
from tests.helpers import make_sample

LOSSES = {"loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_box_reg", "loss_mask"}


def test_training_losses_are_finite_and_every_trainable_parameter_gets_a_finite_gradient(tiny_cfg):
    torch.manual_seed(0)
    model = build_model(tiny_cfg).train()
    samples = [make_sample(120, 150, 3, 3, seed=1), make_sample(100, 90, 2, 3, seed=2)]
    losses = model([s[0] for s in samples], [s[1] for s in samples])
    assert set(losses) == LOSSES
    assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert len(trainable) == len(list(model.parameters()))  # the tiny config freezes nothing
    no_grad = [n for n, p in trainable if p.grad is None or not torch.isfinite(p.grad).all()]
    assert no_grad == []
    assert model.roi_heads.box_head.conv1.norm.weight.grad.abs().sum() > 0


def test_eval_returns_the_documented_fields_in_input_pixels(tiny_cfg):
    torch.manual_seed(0)
    tiny_cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0  # an untrained model must still return boxes
    model = build_model(tiny_cfg).eval()
    images = [make_sample(120, 150, 2, 3, seed=3)[0], make_sample(300, 200, 2, 3, seed=4)[0]]
    with torch.no_grad():
        outputs = model(images)
    assert len(outputs) == 2
    for image, out in zip(images, outputs):
        assert set(out) == {"boxes", "labels", "scores", "masks"}
        count = len(out["boxes"])
        assert 0 < count <= tiny_cfg.TEST.DETECTIONS_PER_IMAGE
        height, width = image.shape[-2:]
        assert out["boxes"].shape == (count, 4)
        assert out["boxes"][:, 0::2].max() <= width and out["boxes"][:, 1::2].max() <= height
        assert out["boxes"].min() >= 0
        assert out["labels"].dtype == torch.int64
        assert out["labels"].min() >= 1 and out["labels"].max() <= tiny_cfg.MODEL.ROI_HEADS.NUM_CLASSES
        assert ((out["scores"] >= 0) & (out["scores"] <= 1)).all()
        assert out["masks"].shape == (count, 1, height, width)
        assert out["masks"].min() >= 0 and out["masks"].max() <= 1


def test_test_size_differs_from_train_sizes(tiny_cfg):
    model = build_model(tiny_cfg)
    assert model.transform.min_size == (96, 128)
    model.eval()
    assert (model.transform.min_size, model.transform.max_size) == ((128,), 160)
    model.train()
    assert model.transform.min_size == (96, 128)


def test_mask_off_builds_faster_rcnn(tiny_cfg):
    tiny_cfg.MODEL.MASK_ON = False
    model = build_model(tiny_cfg)
    assert model.roi_heads.mask_head is None
    image, target = make_sample(100, 100, 2, 3, seed=5)
    target.pop("masks")
    assert "loss_mask" not in model([image], [target])


def test_state_dict_uses_detectron2_part_names(tiny_cfg):
    keys = set(build_model(tiny_cfg).state_dict())
    for key in [
        "backbone.bottom_up.stem.conv1.weight",
        "backbone.bottom_up.stem.conv1.norm.weight",
        "backbone.bottom_up.res3.0.shortcut.norm.bias",
        "backbone.fpn_lateral2.norm.weight",
        "backbone.fpn_output5.weight",
        "rpn.head.objectness_logits.weight",
        "roi_heads.box_head.conv4.norm.weight",
        "roi_heads.box_head.fc1.weight",
        "roi_heads.box_predictor.cls_score.weight",
        "roi_heads.mask_head.mask_fcn1.norm.weight",
        "roi_heads.mask_head.deconv.weight",
        "roi_heads.mask_predictor.mask_fcn_logits.weight",
    ]:
        assert key in keys
    assert not any(".0.0." in k for k in keys)


def test_group_count_is_read_from_the_config(tiny_cfg):
    tiny_cfg.MODEL.GROUP_NORM.NUM_GROUPS = 4
    model = build_model(tiny_cfg)
    assert {m.num_groups for m in model.modules() if isinstance(m, GroupNorm)} == {4}


def test_unknown_meta_architecture(tiny_cfg):
    tiny_cfg.MODEL.META_ARCHITECTURE = "RetinaNet"
    with pytest.raises(UnknownNameError, match="MaskRCNN"):
        build_model(tiny_cfg)


def test_detectron2_resize_style_rounds_sizes_and_pastes_masks_inside_their_boxes(tiny_cfg):
    from gn_detection.modeling.meta_arch.transform import paste_masks_grid_sample

    tiny_cfg.INPUT.RESIZE_STYLE = "detectron2"
    model = build_model(tiny_cfg).eval()
    image = torch.rand(3, 75, 101) * 255
    resized, _ = model.transform.resize(image)
    # shorter side 75 -> 128 (scale 1.7067): 101 * 1.7067 = 172.4 > 160, so scale = 160 / 101
    assert tuple(resized.shape[-2:]) == (int(75 * 160 / 101 + 0.5), 160)

    masks = torch.ones(2, 1, 28, 28)
    boxes = torch.tensor([[10.0, 20.0, 30.0, 50.0], [0.0, 0.0, 5.2, 5.2]])
    pasted = paste_masks_grid_sample(masks, boxes, (60, 40))[:, 0] >= 0.5
    assert pasted[0, 20:50, 10:30].all() and pasted[0].sum() == 20 * 30
    assert pasted[1, :5, :5].all() and pasted[1].sum() == 25  # a pixel counts when its centre is inside

    tiny_cfg.INPUT.RESIZE_STYLE = "pillow"
    with pytest.raises(ValueError, match="INPUT.RESIZE_STYLE='pillow'"):
        build_model(tiny_cfg)


@pytest.mark.parametrize("key", ["CHANNELS_LAST", "COMPILE_BACKBONE"])
def test_backbone_execution_options_change_neither_losses_nor_checkpoints(tiny_cfg, key, monkeypatch):
    # Inductor's C++ kernels for the tiny backbone take two minutes to build on 2 cores; aot_eager
    # traces the same forward and backward graphs (dynamo, AOTAutograd) and runs them as they are.
    compile_module = torch.nn.Module.compile
    monkeypatch.setattr(torch.nn.Module, "compile", lambda module: compile_module(module, backend="aot_eager"))
    images, targets = zip(*[make_sample(64, 80, 2, 3, seed) for seed in (0, 1)])
    losses, states = {}, {}
    for enabled in (False, True):
        tiny_cfg.MODEL[key] = enabled
        torch.manual_seed(0)
        model = build_model(tiny_cfg).train()
        if key == "CHANNELS_LAST":
            assert model.backbone.bottom_up.stem.conv1.weight.is_contiguous(memory_format=torch.channels_last) == enabled
        else:
            assert (model.backbone._compiled_call_impl is not None) == enabled
        torch.manual_seed(0)
        losses[enabled] = model(list(images), list(targets))
        sum(losses[enabled].values()).backward()
        assert all(torch.isfinite(p.grad).all() for p in model.backbone.parameters())
        states[enabled] = model.state_dict()
    assert list(states[True]) == list(states[False])  # checkpoints load either way
    for name, value in states[False].items():
        assert states[True][name].equal(value), name
    for name, loss in losses[False].items():
        torch.testing.assert_close(losses[True][name], loss, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("norm", ["LN", "IN", "BRN", "BN"])
def test_each_paper_norm_in_every_norm_key_trains_a_step(tiny_cfg, norm):
    from gn_detection.layers import NORM_REGISTRY
    from gn_detection.layers.conv import Conv2d

    parts = ("RESNETS", "FPN", "ROI_BOX_HEAD", "ROI_MASK_HEAD")
    for part in parts:
        tiny_cfg.MODEL[part].NORM = norm
    torch.manual_seed(0)
    model = build_model(tiny_cfg).train()
    kind = NORM_REGISTRY.get(norm)
    prefixes = ("backbone.bottom_up.", "backbone.fpn_", "roi_heads.box_head.", "roi_heads.mask_head.")
    for prefix in prefixes:
        convs = [m for n, m in model.named_modules() if n.startswith(prefix) and isinstance(m, Conv2d) and m.norm is not None]
        assert convs and all(type(c.norm) is kind for c in convs), prefix
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    samples = [make_sample(120, 150, 3, 3, seed=1), make_sample(100, 90, 2, 3, seed=2)]
    losses = model([s[0] for s in samples], [s[1] for s in samples])
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    optimizer.step()
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert "roi_heads.mask_head.mask_fcn1.norm.weight" in changed and "backbone.bottom_up.stem.conv1.norm.weight" in changed
