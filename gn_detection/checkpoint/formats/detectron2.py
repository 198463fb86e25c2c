"""detectron2 names -> gn_detection names. The backbone and heads share their names; the RPN
head moves, and the predictors change class order: detectron2 puts background last in
cls_score and has no background rows in bbox_pred or the mask predictor."""
import torch

from ..rename import Format, InputConvention, TensorFix
from .detectron import BGR_MEAN

DROP = (r"^pixel_(mean|std)$", r"num_batches_tracked$")

RULES = (
    (r"^proposal_generator\.rpn_head\.", "rpn.head."),
    (r"^roi_heads\.mask_head\.predictor\.", "roi_heads.mask_predictor.mask_fcn_logits."),
)


def background_last_to_first(tensor: torch.Tensor, target_shape) -> torch.Tensor:
    """(K+1, ...) rows with background last -> background first."""
    return torch.cat([tensor[-1:], tensor[:-1]])


def add_background_rows(rows_per_class: int):
    """(K*r, ...) class rows without background -> (K+1)*r with zero background rows first. A
    class-agnostic source (r rows) is repeated for every class, or kept for a class-agnostic model."""

    def fix(tensor: torch.Tensor, target_shape) -> torch.Tensor:
        if target_shape is not None and tuple(target_shape) == tuple(tensor.shape):
            return tensor
        if target_shape is not None and tensor.shape[0] == rows_per_class and target_shape[0] > rows_per_class:
            tensor = tensor.repeat((target_shape[0] // rows_per_class - 1,) + (1,) * (tensor.dim() - 1))
        return torch.cat([torch.zeros_like(tensor[:rows_per_class]), tensor])

    return fix


DETECTRON2 = Format(
    name="detectron2",
    rules=RULES,
    matches=lambda keys: any(k.startswith("proposal_generator.") or k in ("pixel_mean", "pixel_std") for k in keys),
    drop=DROP,
    fixes=(
        TensorFix("background moved from last to first", r"^roi_heads\.box_predictor\.cls_score\.", background_last_to_first),
        TensorFix("zero background box deltas added", r"^roi_heads\.box_predictor\.bbox_pred\.", add_background_rows(4)),
        TensorFix("zero background mask added", r"^roi_heads\.mask_predictor\.", add_background_rows(1)),
    ),
    # detectron2's defaults, which its model-zoo configs (the GN ones too) keep; a checkpoint
    # that carries its pixel_mean/pixel_std buffers overrides them.
    input=InputConvention("BGR", BGR_MEAN, (1.0, 1.0, 1.0)),
)
