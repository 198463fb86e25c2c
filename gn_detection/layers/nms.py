"""Non-maximum suppression per group (FPN level or class) that torch.export can trace."""
import torch
import torchvision

__all__ = ["batched_nms"]


@torch.library.register_fake("torchvision::nms", allow_override=True)
def _nms_fake(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    # torchvision's own says at least 2 boxes are kept, and an exported program asserts that at
    # run time: an image with one detection or none would stop it. Any number, 0 included, is.
    return boxes.new_empty(torch.library.get_ctx().new_dynamic_size(), dtype=torch.long)


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """torchvision's ``batched_nms``: indices of the kept boxes by decreasing score.

    Under torch.export, its coordinate trick alone (each group's boxes shifted apart, one NMS):
    torchvision picks between two algorithms by the number of boxes, a branch on data that
    export cannot trace. The two give the same boxes; eager runs keep torchvision's choice.
    """
    if not torch.compiler.is_exporting():
        return torchvision.ops.batched_nms(boxes, scores, groups, iou_threshold)
    # a zero appended so that the largest coordinate of no boxes is defined
    largest = torch.cat([boxes.flatten(), boxes.new_zeros(1)]).max()
    shifted = boxes + (groups.to(boxes) * (largest + 1))[:, None]
    return torchvision.ops.nms(shifted, scores, iou_threshold)
