"""Train whole configs (one per label, e.g. a GN, a BN* and a BN twin) at several batch sizes and
tabulate AP and mean FROC sensitivity: ``study --task detection`` with configs in place of norm
names. Each config trains as it is, except IMS_PER_BATCH and BASE_LR, which is scaled linearly
(it is set for the config's own IMS_PER_BATCH); the iterations stay. Runs go to
OUTPUT/<label>_b<batch>, the table and plot to OUTPUT/study.md and study.png; a comparison
started again in the same folder keeps its finished runs."""
import argparse
import re

from ..utils.errors import UserError
from ..utils.logger import setup_logging
from .arguments import at_least
from .common import setup_cfg

HELP = "train GN / BN* / BN twins at several batch sizes and tabulate AP and FROC (resumable)"

METRICS = ("box_ap", "mask_ap", "froc")


def add_arguments(parser) -> None:
    parser.add_argument("--configs", nargs="+", required=True, metavar="LABEL=CFG", help="configs to compare")
    parser.add_argument(
        "--batches", nargs="+", type=at_least(1), default=[1, 2], metavar="B", help="global batch sizes (1 2)"
    )
    parser.add_argument("--output", required=True, metavar="DIR", help="folder for the runs, table and plot")
    parser.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE", help="overrides applied to every config")


def run(args) -> int:
    from ..studies.detection import DetectionTask
    from ..studies.engine import Run, run_sweep, write_report

    cfgs = {}
    for item in args.configs:
        label, sep, path = item.partition("=")
        if not sep or not re.fullmatch(r"[\w.+*-]+", label):
            raise UserError(f"--configs {item!r}: expected LABEL=CONFIG_FILE with a label of letters, digits and "
                            f"._+*-, e.g. GN=configs/medical/synthetic_xray_R_18_FPN_gn.yaml")
        if label in cfgs:
            raise UserError(f"--configs: the label {label!r} is given twice; each config needs its own label")
        cfgs[label] = setup_cfg(path, args.opts)
    setup_logging(args.output)
    task = DetectionTask(cfgs)
    runs = [Run(label, batch, seed=None) for label in cfgs for batch in args.batches]
    rows = run_sweep(runs, task.train, task.identity, args.output, task=task.name, metrics=METRICS)
    print(write_report(rows, args.output, task=task.name, metrics=METRICS))
    print(f"wrote {args.output}/study.json, study.md and study.png")
    return 0
