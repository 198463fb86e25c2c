"""Seconds per training step and per inference image, and peak memory, of several models
measured side by side: our configs at several precisions, and torchvision's or detectron2's
Mask R-CNN of the same topology."""
import contextlib
import ctypes
import logging
import platform
import statistics
import time
from typing import Dict, List, Sequence, Tuple, Union

import torch
from torch import nn

from ..engine.solver import build_optimizer
from ..modeling import build_model
from ..utils.errors import UserError
from .references import REFERENCES

__all__ = [
    "PRECISIONS", "synthetic_batch", "benchmark", "calibrate_frozen_batchnorm", "describe_machine",
    "ratios_to_first", "format_report",
]

# --precision -> autocast dtype (None: plain fp32)
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}

logger = logging.getLogger(__name__)

Size = Union[int, Tuple[int, int]]


def synthetic_batch(num_images: int, size: Size, num_classes: int, *, instances: int = 4, seed: int = 0):
    """``num_images`` images of ``size`` (S or (H, W)) in 0-255 with ``instances`` rectangles
    each, and their targets (boxes, labels, masks): fixed for a seed."""
    height, width = (size, size) if isinstance(size, int) else size
    g = torch.Generator().manual_seed(seed)
    images, targets = [], []
    for _ in range(num_images):
        image = torch.rand(3, height, width, generator=g) * 255
        boxes, masks = [], torch.zeros(instances, height, width, dtype=torch.uint8)
        for i in range(instances):
            w, h = (int(v) for v in torch.randint(min(height, width) // 8, min(height, width) // 2, (2,), generator=g))
            x0 = int(torch.randint(0, width - w, (1,), generator=g))
            y0 = int(torch.randint(0, height - h, (1,), generator=g))
            boxes.append([x0, y0, x0 + w, y0 + h])
            masks[i, y0 : y0 + h, x0 : x0 + w] = 1
        images.append(image)
        labels = torch.randint(1, num_classes + 1, (instances,), generator=g)
        targets.append(dict(boxes=torch.tensor(boxes, dtype=torch.float32), labels=labels, masks=masks))
    return images, targets


def calibrate_frozen_batchnorm(model: nn.Module, inputs: tuple) -> int:
    """Set each frozen BN's statistics to those of its input on ``model(*inputs)``, layer by
    layer in one forward pass; return how many were set.

    A freshly built frozen-BN network has identity norms, so its activations grow with depth, its
    RPN proposes degenerate boxes and NMS leaves a handful: the RoI heads would then run on far
    fewer RoIs than with pretrained weights. Calibrated, it normalizes like a trained network and
    the heads get their full share of proposals, as a GN network does from the start.
    """

    def set_statistics(module, args):
        x = args[0].detach().float()
        module.running_mean.copy_(x.mean(dim=(0, 2, 3)))
        module.running_var.copy_(x.var(dim=(0, 2, 3)))

    # torchvision's and detectron2's classes share the name and the buffers
    frozen = [m for m in model.modules() if type(m).__name__ == "FrozenBatchNorm2d"]
    handles = [m.register_forward_pre_hook(set_statistics) for m in frozen]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return len(frozen)


class _StepMemory:
    """Peak memory between ``start()`` and ``read_mb()`` above what was in use at ``start()``:
    the working memory of a step (activations, gradients, workspaces), comparable between models
    that share a process. The process's resident set on the CPU (Linux), allocated tensors on
    CUDA."""

    def __init__(self, device: torch.device):
        self.device = device
        self.baseline = 0.0

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.baseline = torch.cuda.memory_allocated(self.device) / 2**20
            return
        _malloc_trim()  # freed heap back to the OS, so the resident set counts live memory only
        with contextlib.suppress(OSError):
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets the high-water mark to the current resident set
        self.baseline = _proc_status_mb("VmRSS")

    def read_mb(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20 - self.baseline
        return _proc_status_mb("VmHWM") - self.baseline


def _malloc_trim() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _proc_status_mb(field: str) -> float:
    """A memory field of /proc/self/status in MiB; NaN where there is none (not Linux)."""
    with contextlib.suppress(OSError):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 2**10
    return float("nan")


class _Variant:
    """One model at one precision, with its inputs on its device."""

    def __init__(self, name: str, model: nn.Module, optimizer, train_inputs: tuple, test_inputs: tuple,
                 device: torch.device, precision: str):
        self.name, self.model, self.optimizer, self.device = name, model, optimizer, device
        self.precision = precision
        self.train_inputs, self.test_inputs = train_inputs, test_inputs
        # The step does all its work but changes nothing: the timed model stays the one built,
        # so its proposals, and so the RoI heads' load, do not drift with training.
        for group in self.optimizer.param_groups:
            group["lr"] = 0.0
        if calibrate_frozen_batchnorm(self.model, self.test_inputs):
            logger.info("%s: frozen BN statistics set from the benchmark images", name)
        self.memory = _StepMemory(device)
        self.train_times: List[float] = []
        self.infer_times: List[float] = []
        self.step_memory_mb = 0.0

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _autocast(self):
        dtype = PRECISIONS[self.precision]
        return contextlib.nullcontext() if dtype is None else torch.autocast(self.device.type, dtype=dtype)

    def train_step(self) -> float:
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        self._sync()
        self.memory.start()
        start = time.perf_counter()
        with self._autocast():
            losses = self.model(*self.train_inputs)
        sum(losses.values()).backward()
        self.optimizer.step()
        self._sync()
        elapsed = time.perf_counter() - start
        self.step_memory_mb = max(self.step_memory_mb, self.memory.read_mb())
        return elapsed

    def inference(self) -> float:
        self.model.eval()
        self._sync()
        start = time.perf_counter()
        with torch.no_grad(), self._autocast():
            self.model(*self.test_inputs)
        self._sync()
        return (time.perf_counter() - start) / len(self.test_inputs[0])

    def result(self, batch: int) -> dict:
        train, infer = statistics.median(self.train_times), statistics.median(self.infer_times)
        return dict(
            precision=self.precision,
            train_step_s=train,
            inference_s_per_image=infer,
            train_images_per_s=batch / train,
            inference_images_per_s=1 / infer,
            train_step_memory_mb=self.step_memory_mb,
            parameters_m=sum(p.numel() for p in self.model.parameters()) / 1e6,
        )


def _build_variants(cfgs: Dict[str, object], references: Sequence[str], precisions: Sequence[str], images, targets):
    first_cfg = next(iter(cfgs.values()))
    device = torch.device(first_cfg.MODEL.DEVICE)
    images = [i.to(device) for i in images]
    targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
    variants = []
    for name, cfg in cfgs.items():
        for precision in precisions:
            torch.manual_seed(0)
            model = build_model(cfg)
            label = name if len(precisions) == 1 else f"{name} [{precision}]"
            variants.append(_Variant(label, model, build_optimizer(cfg, model), (images, targets), (images,), device, precision))
    for reference in references:
        torch.manual_seed(0)
        model, train_inputs, test_inputs = REFERENCES[reference](first_cfg, images, targets)
        model.to(device)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.SGD(params, lr=0.0, momentum=0.9, weight_decay=1e-4)
        label = reference if len(precisions) == 1 else f"{reference} [fp32]"
        variants.append(_Variant(label, model, optimizer, train_inputs, test_inputs, device, "fp32"))
    return variants


def benchmark(
    cfgs: Dict[str, object],
    *,
    size: Size,
    batch: int,
    iters: int,
    warmup: int = 2,
    precisions: Sequence[str] = ("fp32",),
    references: Sequence[str] = (),
) -> Dict[str, Dict]:
    """Median seconds per training step (forward, backward, optimizer) and per inference image,
    and the training step's working memory, of each config at each precision, then of each
    reference model in fp32 (how they ship), built from the first config's topology.

    The variants run interleaved (A B A B ...) in this process on the same fixed inputs, so
    drifts in the machine's speed hit them alike; only ratios between them are meaningful.
    """
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown or not precisions:
        raise UserError(f"--precision {list(precisions)}: expected some of {sorted(PRECISIONS)}")
    unknown = [r for r in references if r not in REFERENCES]
    if unknown:
        raise UserError(f"reference models {unknown}: expected some of {sorted(REFERENCES)}")
    devices = {torch.device(cfg.MODEL.DEVICE).type for cfg in cfgs.values()}
    if len(devices) != 1:
        raise UserError(f"the configs name different MODEL.DEVICE types {sorted(devices)}; benchmark one at a time")
    if "fp16" in precisions and devices != {"cuda"}:
        raise UserError("--precision fp16 needs MODEL.DEVICE cuda; use bf16 on the CPU")
    num_classes = {cfg.MODEL.ROI_HEADS.NUM_CLASSES for cfg in cfgs.values()}.pop()
    images, targets = synthetic_batch(batch, size, num_classes)
    variants = _build_variants(cfgs, references, precisions, images, targets)
    for i in range(warmup + iters):
        for v in variants:
            train, infer = v.train_step(), v.inference()
            if i >= warmup:
                v.train_times.append(train)
                v.infer_times.append(infer)
            logger.info(
                "%s: %s %d/%d  train %.3f s  inference %.3f s/image", v.name,
                "step" if i >= warmup else "warm-up", i + 1 - (warmup if i >= warmup else 0),
                iters if i >= warmup else warmup, train, infer,
            )
    return {v.name: v.result(batch) for v in variants}


def describe_machine(device: torch.device) -> Dict[str, object]:
    """What the figures were measured on: the CPU model, the GPU's name on CUDA, torch."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    return dict(
        cpu=cpu,
        gpu=torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        torch=torch.__version__,
        torch_threads=torch.get_num_threads(),
    )


def ratios_to_first(results: Dict[str, Dict]) -> Dict[str, Dict[str, float]]:
    """Each variant's times divided by the first's: below 1 is faster."""
    first = next(iter(results.values()))
    return {
        name: dict(
            train_step=r["train_step_s"] / first["train_step_s"],
            inference=r["inference_s_per_image"] / first["inference_s_per_image"],
        )
        for name, r in results.items()
    }


def format_report(results: Dict[str, Dict]) -> str:
    ratios = ratios_to_first(results)
    width = max(40, *(len(n) for n in results))
    columns = [("train s/step", "train_step_s", ".3f"), ("infer s/img", "inference_s_per_image", ".3f"),
               ("train img/s", "train_images_per_s", ".3f"), ("step MB", "train_step_memory_mb", ".0f")]
    lines = [f"{'variant':{width}s} " + " ".join(f"{h:>12s}" for h in [c[0] for c in columns] + ["train ratio", "infer ratio"])]
    for name, r in results.items():
        cells = [f"{r[key]:12{spec}}" for _, key, spec in columns]
        cells += [f"{ratios[name]['train_step']:12.3f}", f"{ratios[name]['inference']:12.3f}"]
        lines.append(f"{name:{width}s} " + " ".join(cells))
    lines.append("ratios are to the first variant, measured interleaved in this process")
    return "\n".join(lines)

