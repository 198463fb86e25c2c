"""COCO run-length-encoded masks, checked without decoding them: a corrupt RLE is named when the
JSON is loaded, not when a training step first draws it."""
from typing import List, Optional

from ..utils.errors import UserError

__all__ = ["check_rle", "compressed_runs"]


def check_rle(rle: dict, record: dict, where: str, json_file: str) -> dict:
    """``rle`` if its size is its image's and its runs cover exactly that many pixels."""
    if "size" not in rle or "counts" not in rle:
        raise UserError(
            f"{json_file}: {where}: an RLE segmentation needs 'size' and 'counts', got keys {sorted(rle)}"
        )
    expected = [record["height"], record["width"]]
    if rle["size"] != expected:
        raise UserError(
            f"{json_file}: {where}: RLE size {rle['size']} is not the size of image id={record['image_id']}, "
            f"[height, width] = {expected}"
        )
    counts = rle["counts"]
    if not isinstance(counts, str) and not (isinstance(counts, list) and all(isinstance(c, int) for c in counts)):
        raise UserError(
            f"{json_file}: {where}: RLE counts must be a compressed string or a list of run lengths, "
            f"got {type(counts).__name__}"
        )
    runs = compressed_runs(counts) if isinstance(counts, str) else counts
    if runs is None or any(r < 0 for r in runs) or sum(runs) != expected[0] * expected[1]:
        raise UserError(
            f"{json_file}: {where}: RLE counts do not describe a {expected[0]}x{expected[1]} mask "
            f"(their runs must be >= 0 and add up to {expected[0] * expected[1]} pixels); the counts are corrupt"
        )
    return rle


def compressed_runs(counts: str) -> Optional[List[int]]:
    """The run lengths of a compressed RLE string (pycocotools' rleFrString: 5 bits a character
    from "0" on, 0x20 continues, 0x10 is the sign, runs after the second are differences); None
    when the string stops inside a number or holds a character outside that alphabet."""
    runs: List[int] = []
    position = 0
    while position < len(counts):
        value, shift, more = 0, 0, True
        while more:
            if position == len(counts):
                return None
            c = ord(counts[position]) - 48
            if not 0 <= c < 64:
                return None
            value |= (c & 0x1F) << shift
            more = bool(c & 0x20)
            position, shift = position + 1, shift + 5
            if not more and c & 0x10:
                value |= -1 << shift
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs
