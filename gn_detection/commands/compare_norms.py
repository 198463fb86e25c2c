"""Train one recipe with several norm layers at several batch sizes; tabulate and plot AP and mean
FROC sensitivity. BASE_LR is scaled linearly with the batch size (it is set for the config's
IMS_PER_BATCH); the iterations stay. Each run's files go to OUTPUT/<label>_b<batch>."""
import os

from ..studies.norms import compare_norms, format_table, plot_comparison
from ..utils.errors import UserError
from ..utils.logger import setup_logging
from .common import at_least, setup_cfg

HELP = "train GN / BN* / BN twins at several batch sizes and tabulate AP and FROC"


def add_arguments(parser) -> None:
    parser.add_argument("--configs", nargs="+", required=True, metavar="LABEL=CFG", help="configs to compare")
    parser.add_argument(
        "--batches", nargs="+", type=at_least(1), default=[1, 2], metavar="B", help="global batch sizes (1 2)"
    )
    parser.add_argument("--output", required=True, metavar="DIR", help="folder for the runs, table and plot")
    parser.add_argument("opts", nargs="*", metavar="KEY VALUE", help="overrides applied to every config")


def run(args) -> int:
    cfgs = {}
    for item in args.configs:
        label, sep, path = item.partition("=")
        if not sep:
            raise UserError(f"--configs {item!r}: expected LABEL=CONFIG_FILE, e.g. GN=configs/medical/x.yaml")
        cfgs[label] = setup_cfg(path, args.opts)
    setup_logging(args.output)
    rows = compare_norms(cfgs, args.batches, args.output)
    plot_comparison(rows, os.path.join(args.output, "comparison.png"))
    print(format_table(rows))
    print(f"wrote {args.output}/comparison.md, comparison.json and comparison.png")
    return 0
