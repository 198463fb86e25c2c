"""The batch-size study: train one config with each norm (BN, BN* frozen, GN, GN+WS, EvoNorm-S0,
FRN) at each batch size and seed, for the same number of epochs, with the LR scaled linearly;
write study.json, study.md (mean ± half the range over seeds, and each seed) and study.png (AP
against batch size, one line per norm). Runs already finished in OUTPUT are not run again, and a
run that was cut off continues from its last checkpoint."""
import os

from ..studies.batch_size import NORM_VARIANTS, format_study_table, plot_study, run_study
from ..utils.file_io import atomic_write
from ..utils.logger import setup_logging
from .common import add_config_arguments, at_least, setup_cfg

HELP = "AP against images per batch for each norm, over seeds, for the same epochs (resumable)"


def add_arguments(parser) -> None:
    parser.add_argument("--norms", nargs="+", choices=list(NORM_VARIANTS), default=list(NORM_VARIANTS), metavar="N",
                        help=f"norm variants, of {', '.join(NORM_VARIANTS)} (all)")
    parser.add_argument("--batches", nargs="+", type=at_least(1), default=[1, 2, 4, 8], metavar="B",
                        help="images per batch (1 2 4 8)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1], metavar="S", help="seeds (0 1)")
    parser.add_argument("--epochs", type=float, default=1.0, metavar="E", help="passes over DATASETS.TRAIN per run (1)")
    parser.add_argument("--output", required=True, metavar="DIR", help="folder for the runs, table and plot")
    add_config_arguments(parser)


def run(args) -> int:
    cfg = setup_cfg(args.config_file, args.opts)
    setup_logging(args.output)
    rows = run_study(cfg, norms=args.norms, batches=args.batches, seeds=args.seeds, epochs=args.epochs,
                     output_dir=args.output)
    table = format_study_table(rows)
    atomic_write(os.path.join(args.output, "study.md"), lambda f: f.write((table + "\n").encode("utf-8")))
    plot_study(rows, os.path.join(args.output, "study.png"))
    print(table)
    print(f"wrote {args.output}/study.json, study.md and study.png")
    return 0
