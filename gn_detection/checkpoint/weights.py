"""MODEL.WEIGHTS: find the file, recognise its format from its content, convert and load it."""
import dataclasses
import logging
import os
import warnings
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np
import torch
from torch import nn

from ..utils.comm import unwrap
from ..utils.errors import UserError
from .formats import FORMATS, GN_DETECTION
from .formats.detectron import MSRA_BN_INPUT
from .io import atomic_save, load_weights_file
from .rename import ConversionReport, Format, InputConvention, TensorFix, convert

__all__ = [
    "convert_weights",
    "WEIGHT_URL_PREFIXES",
    "resolve_weights_path",
    "read_checkpoint",
    "load_weights",
    "convert_checkpoint_file",
]

logger = logging.getLogger(__name__)

# Short names for the well-known files, as detectron2 spells them.
WEIGHT_URL_PREFIXES = {
    "detectron://": "https://dl.fbaipublicfiles.com/detectron/",
    "detectron2://": "https://dl.fbaipublicfiles.com/detectron2/",
}

DATA_PARALLEL_PREFIX = "module."
STEM_PATTERN = r"^backbone\.bottom_up\.stem\.conv1\.weight$"


def resolve_weights_path(path: str) -> str:
    """A local file for ``path``: a local path as it is; an http(s) URL or a short name
    (``detectron://ImageNetPretrained/47261647/R-50-GN.pkl``, ``detectron2://...``) downloaded
    once into iopath's cache, with a progress bar."""
    given = path
    for prefix, url in WEIGHT_URL_PREFIXES.items():
        if path.startswith(prefix):
            path = url + path[len(prefix):]
    if path.startswith(("http://", "https://")):
        from iopath.common.file_io import HTTPURLHandler, PathManager, get_cache_dir

        manager = PathManager()
        manager.register_handler(HTTPURLHandler())
        try:
            return manager.get_local_path(path)
        except OSError as e:  # URLError is one: no network, a proxy, a missing file
            raise UserError(
                f"MODEL.WEIGHTS={given!r}: cannot download {path} ({getattr(e, 'reason', None) or e}). "
                f"Offline, download it on another machine and set MODEL.WEIGHTS to the local file; "
                f"downloads are cached in {get_cache_dir()} ($FVCORE_CACHE)"
            ) from None
    if not os.path.isfile(path):
        raise FileNotFoundError(f"MODEL.WEIGHTS={path!r}: no such file")
    return path


def _is_tensor(value) -> bool:
    return isinstance(value, (np.ndarray, torch.Tensor))


def _detect_format(obj, path: str) -> Tuple[Format, Mapping]:
    """The checkpoint's format (the first of FORMATS whose names match) and its tensors."""
    if not isinstance(obj, Mapping):
        raise UserError(f"{path}: holds a {type(obj).__name__}, not a dict of tensors")
    if "blobs" in obj and isinstance(obj["blobs"], Mapping):  # Detectron's pickles
        return FORMATS["detectron"], obj["blobs"]
    if "state_dict" in obj and isinstance(obj["state_dict"], Mapping):  # mmcv's and many trainers' files
        obj = obj["state_dict"]
    if "model" in obj and isinstance(obj["model"], Mapping):
        if obj.get("format") == GN_DETECTION.name:
            return GN_DETECTION, obj["model"]
        obj = obj["model"]
    keys = [k for k, v in obj.items() if _is_tensor(v)]
    if keys and all(k.startswith(DATA_PARALLEL_PREFIX) for k in keys):
        # saved from a DataParallel model, as the WS authors' GN+WS ImageNet ResNets are
        obj = {k[len(DATA_PARALLEL_PREFIX):]: v for k, v in obj.items() if _is_tensor(v)}
        keys = list(obj)
    fmt = next((f for f in FORMATS.values() if f.matches(keys)), None)
    if fmt is None:
        raise UserError(
            f"{path}: cannot tell which format these weights are in (keys like {keys[:5]}); "
            f"pass the format: one of {sorted(FORMATS)}"
        )
    return fmt, obj


def read_checkpoint(path: str, format: str = "auto") -> Tuple[Dict[str, object], Format, Optional[InputConvention]]:
    """The tensors of the weights file at ``path``, its format, and the input they expect.

    Args:
        path: a local file (see ``resolve_weights_path`` for URLs and short names).
        format: "auto" to recognise it from the content, or a format name.
    """
    obj = load_weights_file(path)
    fmt, tensors = _detect_format(obj, path)
    if format != "auto":
        if format not in FORMATS:
            raise UserError(f"--format {format!r}: expected auto or one of {sorted(FORMATS)}")
        fmt = FORMATS[format]
    tensors = {k: v for k, v in tensors.items() if _is_tensor(v)}
    convention = fmt.input
    if fmt.name == "detectron" and any(k.endswith("_bn_s") for k in tensors):
        convention = MSRA_BN_INPUT
    if isinstance(obj, Mapping) and isinstance(obj.get("input"), Mapping):  # written by convert
        convention = InputConvention(**obj["input"])
    if fmt.name == "detectron2" and "pixel_mean" in tensors and "pixel_std" in tensors:
        convention = InputConvention(
            convention.format,
            tuple(float(v) for v in np.asarray(tensors["pixel_mean"]).ravel()),
            tuple(float(v) for v in np.asarray(tensors["pixel_std"]).ravel()),
        )
    return tensors, fmt, convention


def _input_fixes(
    source: Optional[InputConvention], model_input: Optional[InputConvention], notes: List[str]
) -> Tuple[List[TensorFix], Optional[InputConvention]]:
    """How the stem must change for the model's input (INPUT.FORMAT), and the input the result
    expects.

    RGB and BGR swap the stem's input channels; L folds a colour stem into one channel. The pixel
    mean and std are checked against the model's (MODEL.PIXEL_MEAN/PIXEL_STD); differences go to
    ``notes``.
    """
    if source is None or model_input is None:
        return [], source
    wanted = model_input.format
    if wanted == "L" and source.format in ("RGB", "BGR"):
        return _fold_to_gray(source, model_input, notes)
    mean, std = tuple(source.pixel_mean), tuple(source.pixel_std)
    fixes = []
    if {source.format, wanted} == {"RGB", "BGR"}:
        fixes.append(TensorFix(f"input channels reversed ({source.format} -> {wanted})", STEM_PATTERN, lambda t, _: t.flip(1)))
        mean, std = mean[::-1], std[::-1]
    elif source.format != wanted:
        notes.append(f"weights take {source.format} input but INPUT.FORMAT is {wanted}: not adapted")
        return [], source
    for key, given, expected in (("PIXEL_MEAN", model_input.pixel_mean, mean), ("PIXEL_STD", model_input.pixel_std, std)):
        given = tuple(given)
        if len(given) != len(expected) or not np.allclose(given, expected, atol=1e-3):
            notes.append(
                f"MODEL.{key}={list(given)} but these weights were trained with {list(expected)} "
                f"({wanted} order): set it, or the outputs will differ from the source model's"
            )
    return fixes, InputConvention(wanted, mean, std)


def _fold_to_gray(
    source: InputConvention, model_input: InputConvention, notes: List[str]
) -> Tuple[List[TensorFix], InputConvention]:
    """Fold a colour stem into a one-channel one, so the model sees a gray image as the source
    model sees it replicated to three channels.

    The source computes sum_c W_c (g - m_c) / s_c; with W' = sum_c W_c * s / s_c the folded conv
    computes W' (g - m) / s: the same exactly when every m_c equals MODEL.PIXEL_MEAN's m.
    """
    (gray_mean,), (gray_std,) = model_input.pixel_mean, model_input.pixel_std
    scale = torch.tensor([gray_std / s for s in source.pixel_std]).view(1, 3, 1, 1)
    fold = TensorFix(
        f"{source.format} stem folded into one gray channel", STEM_PATTERN, lambda t, _: (t * scale).sum(1, keepdim=True)
    )
    if not np.allclose(source.pixel_mean, gray_mean, atol=1e-3):
        notes.append(
            f"the weights' per-channel means {list(source.pixel_mean)} differ from MODEL.PIXEL_MEAN={gray_mean}: "
            "the folded stem matches the colour model on gray images up to a constant offset per filter"
        )
    return [fold], InputConvention("L", (gray_mean,), (gray_std,))


def convert_weights(
    path: str, *, input: Optional[InputConvention] = None, format: str = "auto"
) -> Tuple[Dict[str, torch.Tensor], ConversionReport, Optional[InputConvention]]:
    """The weights at ``path`` (file, URL or short name) with gn_detection's names, without a
    model to match them against: the tensors, the report and the input they now expect (the
    stem adapted to ``input`` as ``load_weights`` adapts it)."""
    return _convert_for(path, format, None, input)


def _convert_for(
    path: str, format: str, target, model_input: Optional[InputConvention]
) -> Tuple[Dict[str, torch.Tensor], ConversionReport, Optional[InputConvention]]:
    tensors, fmt, source_input = read_checkpoint(resolve_weights_path(path), format)
    notes: List[str] = []
    fixes, convention = _input_fixes(source_input, model_input, notes)
    converted, report = convert(tensors, dataclasses.replace(fmt, fixes=tuple(fmt.fixes) + tuple(fixes)), target)
    report.notes += notes
    return converted, report, convention


def _input_from_deprecated_cfg(cfg, input: Optional[InputConvention]) -> Optional[InputConvention]:
    if cfg is None:
        return input
    warnings.warn(
        "the cfg= argument is deprecated: pass input=InputConvention.from_config(cfg)", DeprecationWarning, stacklevel=3
    )
    return InputConvention.from_config(cfg)


def _refuse_if_strict(strict: bool, path: str, report: ConversionReport) -> None:
    if strict and (report.problems or any("MODEL.PIXEL" in n for n in report.notes)):
        raise UserError(f"{path}: strict loading refused:\n" + "\n".join(report.problems + report.notes))


def load_weights(
    model: nn.Module,
    path: str,
    *,
    input: Optional[InputConvention] = None,
    format: str = "auto",
    strict: bool = False,
    cfg=None,
) -> ConversionReport:
    """Convert the weights at ``path`` (file, URL or short name) to ``model`` and load them.

    Every source tensor is loaded, dropped on purpose or reported unused; every model tensor is
    loaded or reported missing; mismatched shapes are reported with both shapes and not loaded.

    Args:
        input: what the model takes (``InputConvention.from_config(cfg)``): the stem is adapted
            to its channel order and its pixel statistics are checked; None skips both.
        strict: raise instead of loading when the report lists any problem.
        cfg: deprecated; pass ``input=InputConvention.from_config(cfg)``.

    Raises:
        UserError: with ``strict``, listing every problem (and the notes about the input).
    """
    model = unwrap(model)
    input = _input_from_deprecated_cfg(cfg, input)
    converted, report, _ = _convert_for(path, format, model.state_dict(), input)
    _refuse_if_strict(strict, path, report)
    model.load_state_dict(converted, strict=False)
    log = logger.warning if report.problems else logger.info
    log("loaded %s\n%s", path, report.summary())
    return report


def convert_checkpoint_file(
    source: str,
    destination: str,
    *,
    model: Optional[nn.Module] = None,
    input: Optional[InputConvention] = None,
    format: str = "auto",
    strict: bool = False,
    cfg=None,
) -> ConversionReport:
    """Write ``source``'s weights in this package's format to ``destination``.

    With ``model`` the tensors are matched against it and the report is complete; without, only
    the names are converted. ``input`` (and the deprecated ``cfg``) as for ``load_weights``.
    """
    input = _input_from_deprecated_cfg(cfg, input)
    target = model.state_dict() if model is not None else None
    converted, report, convention = _convert_for(source, format, target, input)
    _refuse_if_strict(strict, source, report)
    payload = dict(model=converted, format=GN_DETECTION.name, source=dict(path=source, format=report.source_format))
    if convention is not None:
        payload["input"] = dict(
            format=convention.format, pixel_mean=list(convention.pixel_mean), pixel_std=list(convention.pixel_std)
        )
    atomic_save(payload, destination)
    return report
