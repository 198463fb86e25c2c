"""The batch-size study: one recipe with each norm at each batch size and seed, for the same number
of epochs, resumable; the detection counterpart of the GN paper's Figure 1.

Each run trains ``epochs`` passes over DATASETS.TRAIN: MAX_ITER = ceil(epochs x images / batch),
the LR scaled linearly (BASE_LR is for the config's IMS_PER_BATCH), the warm-up and LR steps at
the same fractions of the run as in the config. A run whose result is in its folder is not run
again, and a run cut off continues from its last checkpoint.
"""
import json
import logging
import math
import os
import statistics
import time
from typing import Dict, List, Sequence

from ..data.build import load_datasets
from ..engine.defaults import run_training
from ..utils.errors import UserError
from ..utils.file_io import atomic_write, atomic_write_json

__all__ = ["NORM_VARIANTS", "format_study_table", "plot_study", "run_study", "summarize"]

logger = logging.getLogger(__name__)

RESULT_FILE = "study_result.json"

# label -> (NORM, CONV) of the backbone, the FPN and both heads. BN* is Detectron's baseline:
# frozen BN in the backbone and no norm in the FPN or heads.
NORM_VARIANTS = {
    "BN": (("BN",) * 4, ("",) * 4),
    "BN*": (("FrozenBN", "", "", ""), ("",) * 4),
    "GN": (("GN",) * 4, ("",) * 4),
    "GN+WS": (("GN",) * 4, ("WS",) * 4),
    "EvoNormS0": (("EvoNormS0",) * 4, ("",) * 4),
    "FRN": (("FRN",) * 4, ("",) * 4),
}
PARTS = ("RESNETS", "FPN", "ROI_BOX_HEAD", "ROI_MASK_HEAD")
METRIC_NAMES = {"box_ap": "box AP", "mask_ap": "mask AP", "froc": "mean FROC sensitivity", "error": "error (%)"}


def _run_cfg(cfg, norm: str, batch: int, seed: int, epochs: float, num_images: int, output_dir: str):
    run = cfg.clone()
    run.defrost()
    norms, convs = NORM_VARIANTS[norm]
    for part, norm_name, conv_name in zip(PARTS, norms, convs):
        run.MODEL[part].NORM, run.MODEL[part].CONV = norm_name, conv_name
    s = cfg.SOLVER
    max_iter = max(1, math.ceil(epochs * num_images / batch))
    run.SOLVER.MAX_ITER = max_iter
    run.SOLVER.STEPS = tuple(sorted({max(1, round(step / s.MAX_ITER * max_iter)) for step in s.STEPS if step < s.MAX_ITER}))
    run.SOLVER.WARMUP_ITERS = round(s.WARMUP_ITERS / s.MAX_ITER * max_iter)
    run.SOLVER.BASE_LR = s.BASE_LR * batch / s.IMS_PER_BATCH
    run.SOLVER.IMS_PER_BATCH = batch
    run.SOLVER.CHECKPOINT_PERIOD = max(1, max_iter // 4)  # a cut-off run loses at most a quarter
    run.TEST.EVAL_PERIOD = 0
    run.SEED = seed
    run.OUTPUT_DIR = os.path.join(output_dir, f"{norm}_b{batch}_s{seed}")
    run.freeze()
    return run


def run_study(
    cfg, *, norms: Sequence[str], batches: Sequence[int], seeds: Sequence[int], epochs: float, output_dir: str
) -> List[Dict]:
    """Train ``cfg`` with each of ``norms`` (keys of NORM_VARIANTS) at each batch size and seed;
    return one row per run (norm, batch, seed, iterations, box/mask AP, FROC, seconds, error),
    also written to ``<output_dir>/study.json``."""
    num_images = len(load_datasets(cfg.DATASETS.TRAIN, filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS,
                                   key="DATASETS.TRAIN").records)
    rows = []
    for norm in norms:
        for batch in batches:
            for seed in seeds:
                run = _run_cfg(cfg, norm, batch, seed, epochs, num_images, output_dir)
                rows.append(_train_once(run, norm, batch, seed))
                atomic_write_json(os.path.join(output_dir, "study.json"), rows)
    return rows


def _train_once(run, norm: str, batch: int, seed: int) -> Dict:
    done = os.path.join(run.OUTPUT_DIR, RESULT_FILE)
    if os.path.isfile(done):
        with open(done) as f:
            row = json.load(f)
        if row["iterations"] != run.SOLVER.MAX_ITER:
            raise UserError(
                f"{done}: this run trained {row['iterations']} iterations, this study asks for "
                f"{run.SOLVER.MAX_ITER} (other --epochs or data): use another --output"
            )
        logger.info("study: %s is done already", run.OUTPUT_DIR)
        return row
    logger.info("study: %s at batch %d, seed %d: %d iterations, lr %.4g", norm, batch, seed, run.SOLVER.MAX_ITER,
                run.SOLVER.BASE_LR)
    start = time.perf_counter()
    try:
        (results,) = run_training(run, resume=True).values()
        error = ""
    except FloatingPointError as e:  # a diverged run is a result too
        results, error = {}, str(e).split(";")[0]
    row = dict(
        norm=norm, batch=batch, seed=seed, iterations=run.SOLVER.MAX_ITER,
        box_ap=results.get("bbox", {}).get("AP", float("nan")),
        mask_ap=results.get("segm", {}).get("AP", float("nan")),
        froc=results.get("froc", {}).get("mean_sensitivity", float("nan")),
        seconds=time.perf_counter() - start, error=error,
    )
    atomic_write_json(done, row)
    return row


def summarize(rows: List[Dict], metric: str = "box_ap") -> List[Dict]:
    """Per (norm, batch): the metric of each seed, their mean, and their spread (max - min)."""
    groups: Dict[tuple, List[float]] = {}
    for r in rows:
        groups.setdefault((r["norm"], r["batch"]), []).append(r[metric])
    return [
        dict(norm=norm, batch=batch, values=values, mean=statistics.fmean(values), spread=max(values) - min(values))
        for (norm, batch), values in groups.items()
    ]


def format_study_table(rows: List[Dict]) -> str:
    """Mean ± half the range over the seeds, and each seed's box AP."""
    lines = ["| norm | batch | box AP | box AP per seed | mask AP | iterations |",
             "|---|---|---|---|---|---|"]
    masks = {(m["norm"], m["batch"]): m for m in summarize(rows, "mask_ap")}
    iterations = {(r["norm"], r["batch"]): r["iterations"] for r in rows}
    for box in summarize(rows, "box_ap"):
        key, mask = (box["norm"], box["batch"]), masks[(box["norm"], box["batch"])]
        per_seed = ", ".join(f"{v:.1f}" for v in box["values"])
        lines.append(f"| {box['norm']} | {box['batch']} | {box['mean']:.1f} ± {box['spread'] / 2:.1f} | {per_seed} | "
                     f"{mask['mean']:.1f} ± {mask['spread'] / 2:.1f} | {iterations[key]} |")
    return "\n".join(lines)


def plot_study(rows: List[Dict], path: str, metric: str = "box_ap") -> None:
    """``metric`` (a key of METRIC_NAMES) against images per batch (log scale), one line per
    norm; bars span the seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = summarize(rows, metric)
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for norm in dict.fromkeys(s["norm"] for s in summary):
        points = sorted((s["batch"], s["mean"], min(s["values"]), max(s["values"])) for s in summary if s["norm"] == norm)
        x, mean, low, high = zip(*points)
        ax.errorbar(x, mean, yerr=[[m - lo for m, lo in zip(mean, low)], [hi - m for m, hi in zip(mean, high)]],
                    marker="o", capsize=3, label=norm)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("images per batch")
    ax.set_ylabel(METRIC_NAMES[metric])
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
