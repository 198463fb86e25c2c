"""The GN paper's Figure 1 at small scale: a narrow ResNet classifies the instances of a
registered dataset (square crops of their boxes), with BN or GN, at several batch sizes for the
same number of epochs (the LR scaled linearly from 0.1 at 32); writes the validation error per
norm and batch size as JSON, a table and a plot. Finished runs are kept in the output folder, so
the same command continues a study that was cut off."""
import os

from ..studies.batch_size import plot_study, summarize
from ..studies.classification import CLASSIFIER_NORMS, run_classification_study
from ..utils.file_io import atomic_write, atomic_write_json
from ..utils.logger import setup_logging
from .common import at_least, register_datasets

HELP = "validation error against batch size of a small BN or GN classifier (the paper's Figure 1)"


def add_arguments(parser) -> None:
    parser.add_argument("--train", default="shapes_train", metavar="NAME", help="dataset to train on (shapes_train)")
    parser.add_argument("--val", default="shapes_val", metavar="NAME", help="dataset to measure the error on (shapes_val)")
    parser.add_argument("--norms", nargs="+", choices=list(CLASSIFIER_NORMS), default=list(CLASSIFIER_NORMS))
    parser.add_argument("--batches", nargs="+", type=at_least(1), default=[32, 16, 8, 4, 2], metavar="B",
                        help="images per batch (32 16 8 4 2)")
    parser.add_argument("--epochs", type=at_least(1), default=4, metavar="E", help="epochs per run (4)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], metavar="S", help="seeds (0)")
    parser.add_argument("--output", required=True, metavar="DIR", help="folder for the JSON, table and plot")


def run(args) -> int:
    register_datasets()
    setup_logging(args.output)
    rows = run_classification_study(args.train, args.val, norms=args.norms, batches=args.batches,
                                    epochs=args.epochs, seeds=args.seeds, output_dir=args.output)
    atomic_write_json(os.path.join(args.output, "classification.json"), rows)
    lines = ["| norm | batch | error % (mean ± half the range) | per seed |", "|---|---|---|---|"]
    for s in summarize(rows, "error"):
        per_seed = ", ".join(f"{v:.1f}" for v in s["values"])
        lines.append(f"| {s['norm']} | {s['batch']} | {s['mean']:.1f} ± {s['spread'] / 2:.1f} | {per_seed} |")
    table = "\n".join(lines)
    atomic_write(os.path.join(args.output, "classification.md"), lambda f: f.write((table + "\n").encode("utf-8")))
    plot_study(rows, os.path.join(args.output, "classification.png"), metric="error")
    print(table)
    return 0
