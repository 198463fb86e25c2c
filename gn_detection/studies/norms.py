"""Train the same recipe with different norm layers and batch sizes, and tabulate the results."""
import logging
import os
import time
from typing import Dict, List, Sequence

from ..engine.defaults import run_training
from ..utils.file_io import atomic_write, atomic_write_json

__all__ = ["compare_norms", "format_table", "plot_comparison"]

logger = logging.getLogger(__name__)


def compare_norms(cfgs: Dict[str, object], batch_sizes: Sequence[int], output_dir: str) -> List[Dict]:
    """Train each config at each batch size and collect AP and FROC on its test set.

    Args:
        cfgs: label -> config; each is trained as it is, except SOLVER.IMS_PER_BATCH
            and OUTPUT_DIR. The learning rate follows the linear scaling rule: BASE_LR is for the
            config's own IMS_PER_BATCH and is scaled by batch / IMS_PER_BATCH. The iterations stay.
        batch_sizes: global batch sizes to train each config at.
        output_dir: each run goes to ``<output_dir>/<label>_b<batch>``; the table to
            ``comparison.md`` and ``comparison.json`` there.

    Returns:
        one row per run: label, batch, box and mask AP, mean FROC sensitivity, wall seconds.
    """
    rows = []
    for label, cfg in cfgs.items():
        for batch in batch_sizes:
            run = cfg.clone()
            run.defrost()
            run.SOLVER.BASE_LR = cfg.SOLVER.BASE_LR * batch / cfg.SOLVER.IMS_PER_BATCH
            run.SOLVER.IMS_PER_BATCH = batch
            run.OUTPUT_DIR = os.path.join(output_dir, f"{label}_b{batch}")
            run.freeze()
            logger.info("comparison run %s at batch %d: lr %.4g", label, batch, run.SOLVER.BASE_LR)
            start = time.perf_counter()
            try:
                (results,) = run_training(run).values()
                error = ""
            except FloatingPointError as e:  # a diverged variant is a result too
                results, error = {}, str(e).split(";")[0]
            rows.append(
                dict(
                    norm=label,
                    batch=batch,
                    box_ap=results.get("bbox", {}).get("AP", float("nan")),
                    mask_ap=results.get("segm", {}).get("AP", float("nan")),
                    froc=results.get("froc", {}).get("mean_sensitivity", float("nan")),
                    seconds=time.perf_counter() - start,
                    error=error,
                )
            )
    atomic_write_json(os.path.join(output_dir, "comparison.json"), rows)
    table = format_table(rows) + "\n"
    atomic_write(os.path.join(output_dir, "comparison.md"), lambda f: f.write(table.encode("utf-8")))
    return rows


def format_table(rows: List[Dict]) -> str:
    lines = [
        "| norm | batch | box AP | mask AP | mean FROC sensitivity | train+eval time |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        note = f" ({r['error']})" if r.get("error") else ""
        lines.append(
            f"| {r['norm']} | {r['batch']} | {r['box_ap']:.1f} | {r['mask_ap']:.1f} | {r['froc']:.1f}{note} | "
            f"{r['seconds'] / 60:.1f} min |"
        )
    return "\n".join(lines)


def plot_comparison(rows: List[Dict], path: str) -> None:
    """Bars of box AP, mask AP and mean FROC sensitivity per norm, one group per batch size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = (("box_ap", "box AP"), ("mask_ap", "mask AP"), ("froc", "mean FROC sensitivity"))
    norms = list(dict.fromkeys(r["norm"] for r in rows))
    batches = list(dict.fromkeys(r["batch"] for r in rows))
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.2), sharey=True)
    width = 0.8 / len(norms)
    for ax, (key, title) in zip(axes, metrics):
        for i, norm in enumerate(norms):
            values = [next((r[key] for r in rows if r["norm"] == norm and r["batch"] == b), float("nan")) for b in batches]
            ax.bar([j + i * width for j in range(len(batches))], [0 if v != v else v for v in values], width, label=norm)
        ax.set_xticks([j + width * (len(norms) - 1) / 2 for j in range(len(batches))])
        ax.set_xticklabels([f"batch {b}" for b in batches])
        ax.set_title(title)
        ax.set_ylim(0, 100)
    axes[0].legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
