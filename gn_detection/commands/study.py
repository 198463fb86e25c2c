"""The paper's experiments: train each norm at each batch size (and group setting, and seed),
and report the error or AP of every run beside the paper's numbers.

Tasks:
  classification  a small ResNet on --data: scikit-learn's digits (the default, a real set), an
                  ImageFolder directory, a .npz file (MedMNIST, Keras layouts), or crops of the
                  built-in shapes / xray sets; the paper's Tables 1-3 and Figure 1.
  video           that ResNet inflated to 3-D (I3D) on clips of moving shapes whose class is
                  the motion; the paper's Kinetics table.
  detection       --config-file trained with the norm in the backbone, FPN and both heads;
                  AP (and FROC where the config asks for it).

The paper keeps the epochs fixed as the batch changes and scales the LR linearly (0.1 for 32
images): --epochs does that; --iterations fixes the steps instead (the LR still scaled).
Writes study.json, study.md and plots (study.png against the batch, study_groups.png against G,
study_channels_per_group.png) to --output; a study started again there keeps its finished runs.
"""
import argparse
import logging
import os

from ..utils.errors import UserError
from ..utils.logger import setup_logging
from .arguments import at_least, positive_number
from .common import setup_cfg

HELP = "the paper's experiments: error or AP per norm, batch size and group setting, resumable"

logger = logging.getLogger(__name__)

DEFAULTS = {  # task -> (norms, batches, epochs)
    "classification": (["BN", "GN"], [32, 16, 8, 4, 2], 10.0),
    "video": (["BN", "GN"], [8, 4], 8.0),
    "detection": (["BN", "BN*", "GN", "GN+WS", "EvoNormS0", "FRN"], [1, 2, 4, 8], 1.0),
}


def add_arguments(parser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--task", choices=list(DEFAULTS), default="detection", help="what to train (detection)")
    parser.add_argument("--norms", nargs="+", metavar="N", help="registered norms (BN GN LN IN BRN FrozenBN EvoNormS0 "
                        "FRN ...), NAME+WS, and for detection BN* (per task: classification/video BN GN; detection "
                        "BN BN* GN GN+WS EvoNormS0 FRN)")
    parser.add_argument("--batches", nargs="+", type=at_least(1), metavar="B",
                        help="images or clips per step (classification 32 16 8 4 2; video 8 4; detection 1 2 4 8)")
    parser.add_argument("--groups", nargs="+", type=at_least(1), default=[], metavar="G",
                        help="sweep GN's fixed group count (the paper's Table 3, top)")
    parser.add_argument("--channels-per-group", nargs="+", type=at_least(1), default=[], metavar="C",
                        help="sweep GN's fixed channels per group (Table 3, bottom)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], metavar="S", help="seeds (0)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=positive_number, metavar="E",
                        help="passes over the training set per run, the paper's way (classification 10, video 8, "
                             "detection 1)")
    length.add_argument("--iterations", type=at_least(1), metavar="N", help="steps per run, whatever the batch")
    parser.add_argument("--data", default="digits", metavar="SOURCE",
                        help="classification: digits, shapes, xray, an ImageFolder directory or a .npz file (digits)")
    parser.add_argument("--image-size", type=at_least(8), default=32, metavar="PX",
                        help="classification images and video frames are resized to PX x PX (32)")
    parser.add_argument("--width", type=at_least(1), default=64, metavar="C",
                        help="channels of the classifier's first stage, doubled twice (64)")
    parser.add_argument("--clips", nargs=2, type=at_least(4), default=[1200, 400], metavar=("TRAIN", "VAL"),
                        help="video: training and validation clips (1200 400)")
    parser.add_argument("--config-file", metavar="CFG", help="detection: the YAML config to train")
    parser.add_argument("--output", required=True, metavar="DIR", help="folder for the runs, table and plots")
    parser.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE", help="detection: config overrides")


def run(args) -> int:
    from ..studies.engine import plan_runs, run_sweep, write_report

    norms, batches, epochs = DEFAULTS[args.task]
    args.norms, args.batches = args.norms or norms, args.batches or batches
    if args.iterations is None and args.epochs is None:
        args.epochs = epochs
    setup_logging(args.output)
    task, has_groups, metrics = _task(args)
    runs = plan_runs(args.norms, args.batches, args.seeds, groups=args.groups,
                     channels_per_group=args.channels_per_group, has_groups=has_groups)
    rows = run_sweep(runs, task.train, task.identity, args.output, task=task.name, metrics=metrics)
    print(write_report(rows, args.output, task=task.name, metrics=metrics))
    print(f"wrote {args.output}/study.json, study.md and the plots")
    return 0


def _task(args):
    """The task object, which of its norms take groups, and its metrics."""
    if args.task == "detection":
        from ..studies.detection import DetectionTask, norm_has_groups

        if not args.config_file:
            raise UserError("--task detection needs --config-file, the config to train")
        task = DetectionTask({"": setup_cfg(args.config_file, args.opts)}, epochs=args.epochs, iterations=args.iterations)
        for norm in args.norms:
            task.run_cfg(_probe(norm), "")  # an unknown norm fails now, not after hours of other runs
        return task, norm_has_groups, ("box_ap", "mask_ap", "froc")
    if args.opts or args.config_file:
        raise UserError(f"--task {args.task} takes no --config-file or config overrides ({' '.join(args.opts)})")
    from ..studies.classification import Schedule, norm_has_groups
    from ..studies.tasks import ClassificationTask, VideoTask

    schedule = Schedule(epochs=args.epochs, iterations=args.iterations)
    for norm in args.norms:
        norm_has_groups(norm)  # an unknown norm fails now
    if args.task == "video":
        from ..datasets.video import make_moving_shape_clips

        train = make_moving_shape_clips(args.clips[0], size=args.image_size, seed=0)
        val = make_moving_shape_clips(args.clips[1], size=args.image_size, seed=1)
        mean, std = float(train[0].mean()), float(train[0].std())
        return VideoTask((train[0] - mean) / std, train[1], (val[0] - mean) / std, val[1], schedule=schedule,
                         width=args.width, data=f"moving shapes {args.clips[0]}/{args.clips[1]} at {args.image_size} px",
                         num_classes=4), norm_has_groups, ("error",)
    from ..datasets.classification import load_classification_data
    from .common import register_datasets

    if args.data in ("shapes", "xray"):
        register_datasets()
    data = load_classification_data(args.data, image_size=args.image_size)
    logger.info("classification study on %s: %d training and %d validation images, %d classes", data.source,
                len(data.train_images), len(data.val_images), len(data.classes))
    too_large = [b for b in args.batches if b > len(data.train_images)]
    if too_large:
        raise UserError(f"--batches {too_large}: larger than the {len(data.train_images)} training images of {args.data}")
    identity = f"{os.path.abspath(args.data) if os.path.exists(args.data) else args.data} at {args.image_size} px"
    return ClassificationTask(data.train_images, data.train_labels, data.val_images, data.val_labels, schedule=schedule,
                              width=args.width, data=identity, num_classes=len(data.classes)), norm_has_groups, ("error",)


def _probe(norm: str):
    from ..studies.engine import Run

    return Run(norm, 1)
