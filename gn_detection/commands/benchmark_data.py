"""Measure what a COCO-sized dataset costs: the time and peak memory of loading its JSON with this
package's loader, detectron2's (where installed) and pycocotools', each in a fresh process; and,
with --workers N, the unique memory (USS) of each of N DataLoader workers after one pass over the
records, held as a Python list and serialized. Writes the figures to --output as JSON."""
import importlib.util
import logging
import os

from ..benchmark.data import LOADERS, RECORD_LAYOUTS, measure_load, measure_worker_memory
from ..datasets.synthetic_coco import COCO_TRAIN_SIZE, write_synthetic_coco
from ..utils.file_io import atomic_write_json, check_writable_folder
from .arguments import at_least

HELP = "loading a COCO JSON (time, peak memory) and DataLoader workers' unique memory"

logger = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--json", metavar="FILE", help="a COCO instances JSON to measure")
    source.add_argument(
        "--synthetic-coco-train", metavar="FILE",
        help="measure a synthetic JSON of COCO train2017's size (118,287 images, 860,001 polygons, ~290 MB), "
        "made at FILE first unless it is there already (about a minute)",
    )
    parser.add_argument("--loaders", nargs="+", choices=LOADERS, default=list(LOADERS), metavar="L",
                        help=f"loaders to time, of {', '.join(LOADERS)} (all; detectron2 only where installed)")
    parser.add_argument("--workers", type=at_least(0), default=0, metavar="N",
                        help="also measure N DataLoader workers' unique memory for each record layout (0: skip)")
    parser.add_argument("--output", required=True, metavar="OUT.json", help="where to write the figures")


def run(args) -> int:
    check_writable_folder(os.path.dirname(os.path.abspath(args.output)), "--output")
    json_file = args.json or args.synthetic_coco_train
    if args.synthetic_coco_train and not os.path.isfile(json_file):
        check_writable_folder(os.path.dirname(os.path.abspath(json_file)), "--synthetic-coco-train")
        logger.info("writing %s (%d images, %d annotations)", json_file, *COCO_TRAIN_SIZE.values())
        write_synthetic_coco(json_file, **COCO_TRAIN_SIZE)
    if not os.path.isfile(json_file):
        raise FileNotFoundError(f"--json {json_file}: no such file")
    report = dict(json_file=json_file, megabytes=os.path.getsize(json_file) / 1e6, cpu_count=os.cpu_count(), load=[])
    for loader in args.loaders:
        if loader == "detectron2" and importlib.util.find_spec("detectron2") is None:
            logger.info("detectron2 is not installed: its loader is not timed")
            continue
        logger.info("loading with %s", loader)
        report["load"].append(measure_load(json_file, loader))
        _print_load(report["load"][-1])
    if args.workers:
        report["workers"] = {}
        for layout in RECORD_LAYOUTS:
            logger.info("%d workers reading every record, the records held as: %s", args.workers, layout)
            uss = measure_worker_memory(json_file, args.workers, layout)
            report["workers"][layout] = uss
            print(f"records held as {layout:10s}: unique memory per worker {', '.join(f'{m:.0f}' for m in uss)} MB")
    atomic_write_json(args.output, report)
    print(f"wrote {args.output}")
    return 0


def _print_load(row: dict) -> None:
    print(f"{row['loader']:12s} {row['seconds']:6.1f} s   peak RSS {row['peak_rss_mb'] / 1024:.2f} GB   "
          f"added by the load {row['added_mb'] / 1024:.2f} GB   torch imported: {'yes' if row['torch_imported'] else 'no'}")
