"""torchvision, timm, the WS authors' and mmdetection ResNet names -> gn_detection backbone names. torchvision's
BN becomes frozen BN (same tensor names); timm's resnet50_gn has GN where torchvision has BN;
mmdetection (mmcv) names its GN layers gn1..gn3, as in the GN+WS ImageNet weights it hosts
(open-mmlab://jhu/resnet50_gn_ws, resnet101_gn_ws), which are saved as {"state_dict": ...}."""
from ..rename import Format, InputConvention

DROP = (r"^fc\.", r"num_batches_tracked$")

RULES = (
    (r"^conv1\.", "backbone.bottom_up.stem.conv1."),
    (r"^bn1\.", "backbone.bottom_up.stem.conv1.norm."),
    (r"^layer1\.", "backbone.bottom_up.res2."),
    (r"^layer2\.", "backbone.bottom_up.res3."),
    (r"^layer3\.", "backbone.bottom_up.res4."),
    (r"^layer4\.", "backbone.bottom_up.res5."),
    (r"\.downsample\.0\.", ".shortcut."),
    (r"\.downsample\.1\.", ".shortcut.norm."),
    (r"(res\d\.\d+)\.bn(\d)\.", r"\1.conv\2.norm."),
)

# ImageNet mean and std of RGB pixels in 0-1, scaled to 0-255.
IMAGENET_RGB = InputConvention("RGB", (123.675, 116.280, 103.530), (58.395, 57.120, 57.375))



def _is_resnet(keys) -> bool:
    return "layer1.0.conv1.weight" in keys


# timm's resnet*_gn has GN, so no running statistics, where torchvision has BN; so have the WS
# authors' GN+WS ResNets (R-50-GN-WS.pth.tar: torchvision's names under DataParallel's "module.").
TORCHVISION = Format(
    name="torchvision", rules=RULES, drop=DROP, input=IMAGENET_RGB,
    matches=lambda keys: _is_resnet(keys) and "bn1.running_mean" in keys,
)
TIMM = Format(
    name="timm", rules=RULES, drop=DROP, input=IMAGENET_RGB,
    matches=lambda keys: _is_resnet(keys) and "bn1.running_mean" not in keys,
)


# mmcv's build_norm_layer names a GroupNorm "gn<k>" where torchvision has "bn<k>".
MMDET_RULES = RULES + (
    (r"^gn1\.", "backbone.bottom_up.stem.conv1.norm."),
    (r"(res\d\.\d+)\.gn(\d)\.", r"\1.conv\2.norm."),
)
MMDET = Format(
    name="mmdet", rules=MMDET_RULES, drop=DROP, input=IMAGENET_RGB,
    matches=lambda keys: _is_resnet(keys) and "gn1.weight" in keys,
)
