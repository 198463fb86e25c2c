"""Whole runs from a config, as detectron2's DefaultTrainer: the model, optimizer, schedule, data,
checkpoints and evaluation built and wired to the loop (``engine/train_loop.py``); or evaluation
alone."""
import logging
import os
import random
from typing import Dict, Optional

import numpy as np
import torch
from torch import nn

from ..checkpoint import Checkpointer, InputConvention, load_weights
from ..checkpoint.checkpointer import LAST_CHECKPOINT
from ..config import check_config
from ..data.build import build_test_loader, build_train_loader
from ..data.catalog import get_dataset_spec
from ..evaluation.coco import COCOEvaluator
from ..evaluation.inference import inference_on_dataset
from ..modeling import build_model
from ..utils import comm
from ..utils.comm import unwrap
from ..utils.errors import UserError
from ..utils.file_io import atomic_write, check_writable_folder
from .events import METRICS_FILE, MetricsWriter
from .solver import build_lr_scheduler, build_optimizer
from .train_loop import SimpleTrainer

__all__ = ["run_training", "run_evaluation", "amp_dtype_from_cfg"]

logger = logging.getLogger(__name__)

AMP_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def amp_dtype_from_cfg(cfg) -> Optional[torch.dtype]:
    """The autocast dtype of SOLVER.AMP, or None when it is off."""
    if not cfg.SOLVER.AMP.ENABLED:
        return None
    if cfg.SOLVER.AMP.DTYPE not in AMP_DTYPES:
        raise UserError(f"SOLVER.AMP.DTYPE={cfg.SOLVER.AMP.DTYPE!r}: expected one of {sorted(AMP_DTYPES)}")
    dtype = AMP_DTYPES[cfg.SOLVER.AMP.DTYPE]
    device = torch.device(cfg.MODEL.DEVICE).type
    if dtype == torch.float16 and device != "cuda":
        raise UserError("SOLVER.AMP.DTYPE='float16' needs MODEL.DEVICE 'cuda'; use 'bfloat16' on the CPU")
    if dtype == torch.bfloat16 and device == "cpu" and not _cpu_has_amx():
        logger.warning(
            "SOLVER.AMP: bfloat16 on a CPU without AMX runs emulated and is likely slower than fp32; "
            "set SOLVER.AMP.ENABLED False (or measure: gn-detect benchmark --precision fp32 bf16)"
        )
    return dtype


def _cpu_has_amx() -> bool:
    is_supported = getattr(torch.cpu, "_is_amx_tile_supported", None)  # private, so looked up
    return bool(is_supported and is_supported())


def _gradient_clipper(cfg):
    c = cfg.SOLVER.CLIP_GRADIENTS
    if not c.ENABLED:
        return None
    if c.CLIP_TYPE == "value":
        return lambda params: torch.nn.utils.clip_grad_value_(params, c.CLIP_VALUE)
    if c.CLIP_TYPE == "norm":
        return lambda params: torch.nn.utils.clip_grad_norm_(params, c.CLIP_VALUE, c.NORM_TYPE)
    raise UserError(f"SOLVER.CLIP_GRADIENTS.CLIP_TYPE={c.CLIP_TYPE!r}: expected 'value' or 'norm'")


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _resolve_seed(cfg) -> int:
    """SEED, or one drawn on the main process and shared, so all processes read the same data."""
    seed = cfg.SEED if cfg.SEED >= 0 else int(np.random.SeedSequence().generate_state(1)[0] % 2**31)
    return comm.all_gather(seed)[0]


def run_evaluation(cfg, model: nn.Module) -> Dict[str, Dict]:
    """COCO box (and mask) AP of ``model`` on each of DATASETS.TEST; results by dataset name.

    Each dataset's files go to ``OUTPUT_DIR/inference/<name>/`` when several are evaluated, to
    ``OUTPUT_DIR/inference/`` for a single one.
    """
    model = unwrap(model)
    results = {}
    for name in cfg.DATASETS.TEST:
        loader, dataset = build_test_loader(cfg, name)
        json_file, _ = get_dataset_spec(name, "DATASETS.TEST").locate()
        output_dir = cfg.OUTPUT_DIR if len(cfg.DATASETS.TEST) == 1 else os.path.join(cfg.OUTPUT_DIR, name)
        evaluator = COCOEvaluator(
            json_file,
            category_ids=dataset.category_ids,
            class_names=dataset.thing_classes,
            output_dir=output_dir,
            backend=cfg.TEST.EVALUATOR_BACKEND,
            froc=cfg.TEST.FROC,
        )
        results[name] = inference_on_dataset(model, loader, evaluator)
        if comm.is_main_process():
            summary = ", ".join(
                f"{'box' if task == 'bbox' else 'mask'} AP {metrics['AP']:.1f}"
                for task, metrics in results[name].items()
                if task in ("bbox", "segm")
            )
            if "froc" in results[name]:
                summary += f", mean FROC sensitivity {results[name]['froc']['mean_sensitivity']:.1f}"
            logger.info("%s: %s", name, summary)
    return results


def _check_output_dir(output_dir: str, resume: bool) -> None:
    """OUTPUT_DIR must be writable, and hold no earlier run unless this one resumes it: two runs
    in one folder would mix their checkpoints and metrics.json."""
    if not comm.is_main_process():
        return
    check_writable_folder(output_dir, "OUTPUT_DIR")
    earlier = [name for name in (LAST_CHECKPOINT, METRICS_FILE) if os.path.exists(os.path.join(output_dir, name))]
    if earlier and not resume:
        raise UserError(
            f"OUTPUT_DIR={output_dir} holds a run already ({', '.join(earlier)}): pass --resume to continue "
            "it, or set another OUTPUT_DIR"
        )


def _check_same_start(start_iter: int, output_dir: str) -> None:
    """Every process reads OUTPUT_DIR's last checkpoint itself; on machines that do not share the
    folder they would resume from different iterations, and DDP would hang or mix them."""
    starts = comm.all_gather(start_iter)
    if len(set(starts)) > 1:
        raise UserError(
            f"--resume: the processes found different checkpoints in OUTPUT_DIR={output_dir} (iteration by rank: "
            f"{starts}); on several machines OUTPUT_DIR must be one shared folder, or hold the same last "
            "checkpoint on each machine"
        )


def run_training(cfg, *, resume: bool = False) -> Dict[str, Dict]:
    """Train as ``cfg`` says, evaluating on DATASETS.TEST along the way and at the end.

    With ``resume``, continue from the last checkpoint in OUTPUT_DIR, restoring the model,
    optimizer, schedule, iteration, data order and RNGs; without one, start fresh (and say so).
    """
    check_config(cfg)
    _check_output_dir(cfg.OUTPUT_DIR, resume)
    amp_dtype = amp_dtype_from_cfg(cfg)
    seed = _resolve_seed(cfg)
    _seed_everything(seed)  # before building, so a fresh model's initialization follows SEED
    model = build_model(cfg)
    optimizer = build_optimizer(cfg, model)
    scheduler = build_lr_scheduler(cfg, optimizer)
    grad_scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    checkpointer = Checkpointer(
        cfg.OUTPUT_DIR,
        model=model,
        metadata=dict(seed=seed),
        optimizer=optimizer,
        scheduler=scheduler,
        grad_scaler=grad_scaler,
    )
    checkpointer.remove_stale_temporaries()
    state = checkpointer.resume() if resume else None
    if state is not None:
        start_iter, seed = state["iteration"], state["metadata"]["seed"]
    else:
        start_iter = 0
        if cfg.MODEL.WEIGHTS:
            load_weights(model, cfg.MODEL.WEIGHTS, input=InputConvention.from_config(cfg))
    _check_same_start(start_iter, cfg.OUTPUT_DIR)
    if comm.is_main_process():
        text = cfg.dump()
        atomic_write(os.path.join(cfg.OUTPUT_DIR, "config.yaml"), lambda f: f.write(text.encode("utf-8")))
    logger.info("seed %d", seed)

    train_model = model
    if comm.get_world_size() > 1:
        device_ids = [torch.cuda.current_device()] if torch.device(cfg.MODEL.DEVICE).type == "cuda" else None
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    trainer = SimpleTrainer(
        model=train_model,
        optimizer=optimizer,
        scheduler=scheduler,
        data_loader=build_train_loader(cfg, seed=seed, start_iter=start_iter),
        checkpointer=checkpointer,
        metrics=MetricsWriter(
            cfg.OUTPUT_DIR if comm.is_main_process() else None, max_iter=cfg.SOLVER.MAX_ITER, start_iter=start_iter
        ),
        max_iter=cfg.SOLVER.MAX_ITER,
        checkpoint_period=cfg.SOLVER.CHECKPOINT_PERIOD,
        log_period=cfg.SOLVER.LOG_PERIOD,
        eval_period=cfg.TEST.EVAL_PERIOD,
        evaluate=(lambda: run_evaluation(cfg, model)) if cfg.DATASETS.TEST else None,
        amp_dtype=amp_dtype,
        clip_gradients=_gradient_clipper(cfg),
        grad_scaler=grad_scaler,
    )
    try:
        if start_iter >= cfg.SOLVER.MAX_ITER:
            logger.info("the checkpoint is at SOLVER.MAX_ITER=%d already; evaluating only", cfg.SOLVER.MAX_ITER)
            return run_evaluation(cfg, model) if cfg.DATASETS.TEST else {}
        return trainer.train(start_iter)
    finally:
        trainer.metrics.close()
