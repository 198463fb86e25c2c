"""The engine that applies a source format's rename table to a checkpoint's tensors.

A ``Format`` is data: ordered ``(regex, replacement)`` rules applied top to bottom to every key,
patterns of keys dropped on purpose, named tensor fixes for the keys whose layout differs, and the
input convention its weights were trained with. ``convert`` applies one and reports everything.
"""
import re
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from ..utils.errors import UserError

__all__ = ["InputConvention", "Format", "ConversionReport", "TensorFix", "convert", "as_tensor"]


@dataclass(frozen=True)
class InputConvention:
    """What weights expect as input: channel order ("RGB", "BGR" or "L") and the mean/std of
    0-255 pixel values, in that channel order."""

    format: str
    pixel_mean: Tuple[float, ...]
    pixel_std: Tuple[float, ...]

    @classmethod
    def from_config(cls, cfg) -> "InputConvention":
        """The model's input: INPUT.FORMAT, MODEL.PIXEL_MEAN and MODEL.PIXEL_STD."""
        return cls(cfg.INPUT.FORMAT, tuple(cfg.MODEL.PIXEL_MEAN), tuple(cfg.MODEL.PIXEL_STD))


@dataclass(frozen=True)
class TensorFix:
    """A named change of layout for the target keys matching ``pattern``:
    ``fn(source_tensor, target_shape) -> tensor``."""

    name: str
    pattern: str
    fn: Callable[[torch.Tensor, Tuple[int, ...]], torch.Tensor]


@dataclass(frozen=True)
class Format:
    """A source format. ``matches(keys)`` recognises its checkpoints from their tensor names."""

    name: str
    rules: Sequence[Tuple[str, str]]
    matches: Callable[[Sequence[str]], bool]
    drop: Sequence[str] = ()
    fixes: Sequence[TensorFix] = ()
    input: Optional[InputConvention] = None
    # Target keys that may be filled with a constant when the source has none, and why.
    fills: Sequence[Tuple[str, float, str]] = ()


@dataclass
class ConversionReport:
    """Where every source tensor went and which model tensors got nothing."""

    source_format: str
    loaded: List[Tuple[str, str]] = field(default_factory=list)
    dropped: List[str] = field(default_factory=list)
    unused: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    mismatched: List[Tuple[str, str, Tuple[int, ...], Tuple[int, ...]]] = field(default_factory=list)
    filled: List[Tuple[str, str]] = field(default_factory=list)
    fixed: List[Tuple[str, str]] = field(default_factory=list)
    unfired_rules: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    @property
    def problems(self) -> List[str]:
        """What ``strict`` refuses: unused source tensors, missing model tensors, mismatches."""
        out = [f"unused source tensor {k}" for k in self.unused]
        out += [f"missing model tensor {k}" for k in self.missing]
        out += [f"shape mismatch {s} {tuple(a)} -> {t} {tuple(b)}" for s, t, a, b in self.mismatched]
        return out

    def summary(self, max_items: int = 20) -> str:
        lines = [
            f"source format: {self.source_format}",
            f"loaded {len(self.loaded)} tensors, dropped {len(self.dropped)} on purpose, "
            f"{len(self.unused)} unused, {len(self.missing)} model tensors missing, "
            f"{len(self.mismatched)} shape mismatches",
        ]
        sections = [
            ("unused (no model tensor of that name)", self.unused),
            ("missing (left at their initialization)", self.missing),
            ("shape mismatches (not loaded)", [f"{s} {tuple(a)} -> {t} {tuple(b)}" for s, t, a, b in self.mismatched]),
            ("dropped on purpose", self.dropped),
            ("filled", [f"{k}: {why}" for k, why in self.filled]),
            ("fixed", [f"{k}: {name}" for k, name in self.fixed]),
            ("notes", self.notes),
        ]
        for title, items in sections:
            if items:
                lines.append(f"{title}:")
                lines += [f"  {item}" for item in items[:max_items]]
                if len(items) > max_items:
                    lines.append(f"  ... and {len(items) - max_items} more")
        return "\n".join(lines)


def as_tensor(value) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    return torch.from_numpy(np.ascontiguousarray(value))


def rename_key(key: str, rules: Sequence[Tuple[str, str]], fired: set) -> str:
    for index, (pattern, replacement) in enumerate(rules):
        new = re.sub(pattern, replacement, key)
        if new != key:
            fired.add(index)
            key = new
    return key


def convert(
    source: Mapping[str, object],
    fmt: Format,
    target: Optional[Mapping[str, torch.Tensor]] = None,
) -> Tuple[Dict[str, torch.Tensor], ConversionReport]:
    """Rename ``source``'s tensors with ``fmt``, fix their layouts, and match them to ``target``.

    Args:
        source: the checkpoint's tensors (numpy arrays or torch tensors) by source name.
        fmt: the source format's table.
        target: the model's state dict (names and shapes); None converts names only.

    Returns:
        the converted tensors by model name (only those that fit ``target``) and the report.

    Raises:
        ValueError: two source tensors map to one model name (both are named).
    """
    report = ConversionReport(fmt.name)
    fired: set = set()
    renamed: Dict[str, Tuple[str, torch.Tensor]] = {}
    for key, value in source.items():
        if any(re.search(p, key) for p in fmt.drop):
            report.dropped.append(key)
            continue
        new = rename_key(key, fmt.rules, fired)
        if new in renamed:
            raise UserError(f"source tensors {renamed[new][0]!r} and {key!r} both map to {new!r}")
        renamed[new] = (key, as_tensor(value))
    report.unfired_rules = [pattern for i, (pattern, _) in enumerate(fmt.rules) if i not in fired]

    converted: Dict[str, torch.Tensor] = {}
    for new, (key, tensor) in renamed.items():
        if target is not None and new not in target:
            report.unused.append(key if key == new else f"{key} -> {new}")
            continue
        for fix in fmt.fixes:
            if re.search(fix.pattern, new):
                tensor = fix.fn(tensor, tuple(target[new].shape) if target is not None else None)
                report.fixed.append((new, fix.name))
        if target is not None and tuple(tensor.shape) != tuple(target[new].shape):
            report.mismatched.append((key, new, tuple(tensor.shape), tuple(target[new].shape)))
            continue
        converted[new] = tensor.to(target[new].dtype) if target is not None else tensor
        report.loaded.append((key, new))

    if target is not None:
        mismatched = {t for _, t, _, _ in report.mismatched}
        for key, value in target.items():
            if key in converted or key in mismatched:
                continue
            fill = next(((v, why) for p, v, why in fmt.fills if re.search(p, key)), None)
            if fill is not None and _norm_weight_loaded(key, converted):
                converted[key] = torch.full_like(value, fill[0])
                report.filled.append((key, fill[1]))
            else:
                report.missing.append(key)
    return converted, report


def _norm_weight_loaded(key: str, converted: Mapping[str, torch.Tensor]) -> bool:
    """Statistics are only filled in for a norm whose scale came from the source."""
    return key.rsplit(".", 1)[0] + ".weight" in converted
