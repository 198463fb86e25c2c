"""detectron2's own ResNet, FPN and RoI heads, with gn_detection's norm layers.

Each builder is detectron2's, given a config whose norm names (``MODEL.RESNETS.NORM``,
``MODEL.FPN.NORM``, ``ROI_BOX_HEAD.NORM``, ``ROI_MASK_HEAD.NORM``) are replaced by
gn_detection's norm constructors: detectron2's ``get_norm`` takes a callable as well as a name.
So the modules, and the parameter names, stay detectron2's; only the norms change: "GN" reads
``MODEL.GROUP_NORM``, and any name registered in NORM_REGISTRY works. A name that only detectron2
knows ("naiveSyncBN", ...) is left to detectron2. "LN" is the GN paper's here (statistics over C,
H and W per sample: GN with one group), not detectron2's own "LN" (over C at each position, as in
ConvNeXt), since the plugin's parts take gn_detection's registry first.

Norms that carry their own nonlinearity (EvoNorm-S0, FRN + TLU) are refused: detectron2's blocks
apply ReLU after a norm in their forward code, so it would stack on the norm's own and could not
be taken off without rewriting detectron2's blocks. gn_detection's own blocks let it replace the
ReLU.
"""
import functools

from detectron2.modeling import BACKBONE_REGISTRY, ROI_BOX_HEAD_REGISTRY, ROI_MASK_HEAD_REGISTRY
from detectron2.modeling.backbone.fpn import build_resnet_fpn_backbone
from detectron2.modeling.roi_heads.box_head import FastRCNNConvFCHead
from detectron2.modeling.roi_heads.mask_head import MaskRCNNConvUpsampleHead

from ..layers import NORM_REGISTRY, norm_from_cfg
from ..utils.errors import UserError

__all__ = ["GNFastRCNNConvFCHead", "GNMaskRCNNConvUpsampleHead", "build_gn_resnet_fpn_backbone", "with_norm_constructors"]


def with_norm_constructors(cfg, *keys: str):
    """A copy of ``cfg`` with the norm name at each of ``keys`` replaced by gn_detection's
    constructor for it; "" and names NORM_REGISTRY does not hold stay as they are."""
    cfg = cfg.clone()
    cfg.defrost()
    for key in keys:
        *path, leaf = key.split(".")
        node = functools.reduce(getattr, path, cfg)
        if node[leaf] and node[leaf] in NORM_REGISTRY:
            if getattr(NORM_REGISTRY.get(node[leaf]), "carries_activation", False):
                raise UserError(
                    f"{key}={node[leaf]!r}: this norm carries its own activation, and detectron2's ResNet, "
                    f"FPN and heads apply ReLU after their norms, which would stack on it; train it with "
                    f"`gn-detect train`, whose blocks let it replace the ReLU"
                )
            node[leaf] = norm_from_cfg(cfg, key)
    return cfg


@BACKBONE_REGISTRY.register()
def build_gn_resnet_fpn_backbone(cfg, input_shape):
    """detectron2's ResNet-FPN (``build_resnet_fpn_backbone``) with gn_detection's norms."""
    return build_resnet_fpn_backbone(with_norm_constructors(cfg, "MODEL.RESNETS.NORM", "MODEL.FPN.NORM"), input_shape)


@ROI_BOX_HEAD_REGISTRY.register()
class GNFastRCNNConvFCHead(FastRCNNConvFCHead):
    """detectron2's conv/fc box head with gn_detection's norm after each conv."""

    @classmethod
    def from_config(cls, cfg, input_shape):
        return super().from_config(with_norm_constructors(cfg, "MODEL.ROI_BOX_HEAD.NORM"), input_shape)


@ROI_MASK_HEAD_REGISTRY.register()
class GNMaskRCNNConvUpsampleHead(MaskRCNNConvUpsampleHead):
    """detectron2's mask head with gn_detection's norm after each conv."""

    @classmethod
    def from_config(cls, cfg, input_shape):
        return super().from_config(with_norm_constructors(cfg, "MODEL.ROI_MASK_HEAD.NORM"), input_shape)
