"""One engine for every study: a sweep of runs (a norm, a batch size, a group setting, a seed),
each trained by its task, kept in its own folder, and summarized as JSON, a Markdown table with
the paper's numbers beside ours, and plots.

A run's folder ``<output>/<run name>/`` ends with ``study_result.json``: its settings, the task's
``identity`` of it (what decides its result besides the name: data, schedule, the whole config)
and its metrics. A study started again in the same folder keeps the finished runs whose identity
matches, trains the rest (a detection run continues from its last checkpoint), and refuses a
folder whose run was trained otherwise.
"""
import json
import logging
import os
import statistics
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..utils.errors import UserError
from ..utils.file_io import atomic_write, atomic_write_json
from .paper import paper_error

__all__ = ["METRIC_NAMES", "Run", "format_moment_table", "format_table", "plan_runs", "plot_sweeps", "run_sweep", "summarize", "write_report"]

logger = logging.getLogger(__name__)

RESULT_FILE = "study_result.json"
METRIC_NAMES = {"error": "error (%)", "box_ap": "box AP", "mask_ap": "mask AP", "froc": "mean FROC sensitivity"}


@dataclass(frozen=True)
class Run:
    """One training of a study.

    Args:
        norm: a registered norm name, ``<norm>+WS`` (with Weight Standardization), or a
            task's own variant (detection's ``BN*``, compare-norms' labels).
        batch: images (or clips) per step.
        seed: seeds the initialization and data order; None keeps the config's SEED.
        groups: G of every GN layer (the paper's Table 3, top); None: the task's default.
        channels_per_group: C/G of every GN layer (Table 3, bottom).
    """

    norm: str
    batch: int
    seed: Optional[int] = 0
    groups: Optional[int] = None
    channels_per_group: Optional[int] = None

    @property
    def name(self) -> str:
        parts = [self.norm, f"b{self.batch}"]
        if self.groups is not None:
            parts.append(f"g{self.groups}")
        if self.channels_per_group is not None:
            parts.append(f"c{self.channels_per_group}")
        if self.seed is not None:
            parts.append(f"s{self.seed}")
        return "_".join(parts)

    @property
    def label(self) -> str:
        if self.groups is not None:
            return f"{self.norm} G={self.groups}"
        if self.channels_per_group is not None:
            return f"{self.norm} {self.channels_per_group} ch/group"
        return self.norm


def plan_runs(norms: Sequence[str], batches: Sequence[int], seeds: Sequence[Optional[int]], *,
              groups: Sequence[int] = (), channels_per_group: Sequence[int] = (),
              has_groups: Callable[[str], bool] = lambda norm: False) -> List[Run]:
    """Every norm at every batch and seed; a norm with groups (``has_groups``) once per value of
    ``groups`` and of ``channels_per_group`` when either is given, the others once."""
    runs = []
    for norm in norms:
        settings = [dict()]
        if has_groups(norm) and (groups or channels_per_group):
            settings = [dict(groups=g) for g in groups] + [dict(channels_per_group=c) for c in channels_per_group]
        runs += [Run(norm, batch, seed, **s) for s in settings for batch in batches for seed in seeds]
    names = [r.name for r in runs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UserError(f"these runs are asked for twice (a norm, batch, group or seed repeated): {', '.join(repeated)}")
    return runs


def run_sweep(runs: Sequence[Run], train: Callable[[Run, str], Dict], identity: Callable[[Run], Dict],
              output_dir: str, *, task: str, metrics: Sequence[str]) -> List[Dict]:
    """Train each run not finished yet with ``train(run, folder) -> metrics``; return one row per
    run (its settings, identity, metrics and seconds), also written to ``<output_dir>/study.json``.

    Raises:
        UserError: a run's folder holds a run trained with another identity.
    """
    rows, start, trained = [], time.perf_counter(), 0
    for done, run in enumerate(runs, start=1):
        folder = os.path.join(output_dir, run.name)
        expected = dict(task=task, **identity(run))
        row = _finished_run(os.path.join(folder, RESULT_FILE), run, expected)
        if row is None:
            logger.info("study: %s (%d/%d) starts", run.name, done, len(runs))
            run_start = time.perf_counter()
            row = dict(asdict(run), **expected, **train(run, folder), seconds=time.perf_counter() - run_start)
            atomic_write_json(os.path.join(folder, RESULT_FILE), row)
            trained += 1
            elapsed = time.perf_counter() - start
            logger.info("study: %s done: %s (%d/%d runs, %s, eta %s)", run.name, _metric_text(row, metrics), done, len(runs),
                        timedelta(seconds=int(elapsed)),
                        timedelta(seconds=int(elapsed / trained * (len(runs) - done))))
        rows.append(row)
        atomic_write_json(os.path.join(output_dir, "study.json"), rows)
    return rows


def _finished_run(path: str, run: Run, expected: Dict) -> Optional[Dict]:
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        row = dict(asdict(run), **json.load(f))
    differing = {k: (row.get(k), v) for k, v in expected.items() if row.get(k) != v}
    if differing:
        what = "; ".join(f"{k}: {was!r} there, {now!r} now" for k, (was, now) in differing.items())
        raise UserError(f"{path}: this run was trained otherwise than this study asks ({what}); "
                        f"use another --output, or delete that folder to train it again")
    logger.info("study: %s is done already", os.path.dirname(path))
    return row


def _metric_text(row: Dict, metrics: Sequence[str]) -> str:
    if row.get("diverged"):
        return f"diverged ({row['diverged']})"
    return ", ".join(f"{METRIC_NAMES[k]} {row[k]:.1f}" for k in metrics)


def summarize(rows: List[Dict], metric: str, by: Tuple[str, ...] = ("label", "batch")) -> List[Dict]:
    """Per distinct ``by`` (in the rows' order): the metric of each seed, their mean and spread."""
    groups: Dict[tuple, List[float]] = {}
    for r in rows:
        groups.setdefault(tuple(_field(r, k) for k in by), []).append(r[metric])
    return [dict(zip(by, key), values=values, mean=statistics.fmean(values), spread=max(values) - min(values))
            for key, values in groups.items()]


def _field(row: Dict, key: str):
    return Run(row["norm"], row["batch"], row.get("seed"), row.get("groups"), row.get("channels_per_group")).label \
        if key == "label" else row.get(key)


def format_table(rows: List[Dict], metrics: Sequence[str], *, task: str) -> str:
    """Mean ± half the range over the seeds of each metric, each seed's first metric, the steps
    trained, and the paper's error where the paper has the same run."""
    first = metrics[0]
    with_paper = task in ("classification", "video")
    header = ["norm", "batch"] + [f"{METRIC_NAMES[m]}" for m in metrics] + [f"{METRIC_NAMES[first]} per seed", "steps"]
    header += ["paper's error (%)"] if with_paper else []
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    summaries = {m: summarize(rows, m, by=("label", "batch", "norm", "groups", "channels_per_group")) for m in metrics}
    steps = {(_field(r, "label"), r["batch"]): r.get("iterations") for r in rows}
    for i, s in enumerate(summaries[first]):
        cells = [s["label"], str(s["batch"])]
        cells += [f"{summaries[m][i]['mean']:.1f} ± {summaries[m][i]['spread'] / 2:.1f}" for m in metrics]
        cells += [", ".join(f"{v:.1f}" for v in s["values"]), str(steps[(s["label"], s["batch"])])]
        if with_paper:
            paper = paper_error(task, s["norm"], s["batch"], s["groups"], s["channels_per_group"])
            cells.append("" if paper is None else f"{paper:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_moment_table(rows: List[Dict]) -> str:
    """For the runs with running moments (BN, BRN): how far a batch's moments stray from them at
    the end of training (Batch Renorm's |d| and |log r|, means over layers, channels and batches),
    and the error with the running moments (as tested) beside the error with each batch's own
    (as trained). Means over the seeds."""
    lines = ["| norm | batch | mean abs d | mean abs log r | error, running moments | error, batch moments |",
             "|---|---|---|---|---|---|"]
    with_moments = [dict(r, d=r["moment_gap"]["d"], log_r=r["moment_gap"]["log_r"]) for r in rows if "moment_gap" in r]
    columns = [summarize(with_moments, key) for key in ("d", "log_r", "error", "error_batch_stats")]
    for d, log_r, error, batch_error in zip(*columns):
        lines.append(f"| {d['label']} | {d['batch']} | {d['mean']:.3f} | {log_r['mean']:.3f} | {error['mean']:.1f} | "
                     f"{batch_error['mean']:.1f} |")
    return "\n".join(lines)


def plot_sweeps(rows: List[Dict], output_dir: str, metric: str) -> List[str]:
    """``study.png``: the metric against the batch (log scale), one line per norm setting, where
    more than one batch was trained; ``study_groups.png``: against G and against channels per
    group, one line per batch, where a group sweep was trained. Bars span the seeds."""
    written = []
    if len({r["batch"] for r in rows}) > 1:
        written.append(_plot(summarize(rows, metric), "batch", "label", os.path.join(output_dir, "study.png"),
                             metric, "images per batch"))
    for key, xlabel in (("groups", "groups G"), ("channels_per_group", "channels per group")):
        swept = [r for r in rows if r.get(key) is not None]
        if len({r[key] for r in swept}) > 1:
            name = "study_groups.png" if key == "groups" else "study_channels_per_group.png"
            written.append(_plot(summarize(swept, metric, by=(key, "batch")), key, "batch",
                                 os.path.join(output_dir, name), metric, xlabel))
    return written


def _plot(summary: List[Dict], x_key: str, line_key: str, path: str, metric: str, xlabel: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for line in dict.fromkeys(s[line_key] for s in summary):
        points = sorted((s[x_key], s["mean"], min(s["values"]), max(s["values"])) for s in summary if s[line_key] == line)
        x, mean, low, high = zip(*points)
        ax.errorbar(x, mean, yerr=[[m - lo for m, lo in zip(mean, low)], [hi - m for m, hi in zip(mean, high)]],
                    marker="o", capsize=3, label=f"batch {line}" if line_key == "batch" else line)
    ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(METRIC_NAMES[metric])
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
    return path


def write_report(rows: List[Dict], output_dir: str, *, task: str, metrics: Sequence[str]) -> str:
    """``study.md`` (``format_table``) and the plots (``plot_sweeps``) of the first metric, beside
    ``study.json``; returns the table."""
    table = format_table(rows, metrics, task=task)
    if any("moment_gap" in r for r in rows):
        table += "\n\n" + format_moment_table(rows)
    atomic_write(os.path.join(output_dir, "study.md"), lambda f: f.write((table + "\n").encode("utf-8")))
    finite = [r for r in rows if r[metrics[0]] == r[metrics[0]]]  # a diverged run (NaN) has no point
    plot_sweeps(finite, output_dir, metrics[0])
    return table
