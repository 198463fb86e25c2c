"""Checkpoints this package wrote, or detectron2's backbone and head names without its RPN's
(which are ours too): names as they are."""
from ..rename import Format

GN_DETECTION = Format(
    name="gn_detection",
    rules=(),
    matches=lambda keys: any(k.startswith(("backbone.", "rpn.head.", "roi_heads.")) for k in keys),
)
