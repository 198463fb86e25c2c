"""Time COCOEvaluator with pycocotools and with faster-coco-eval on the same synthetic ground truth
and detections (boxes and masks), interleaved, and check that every AP agrees. Exits 1 if any AP
differs."""
from ..benchmark.evaluator import benchmark_evaluator
from ..utils.file_io import atomic_write_json
from .common import at_least

HELP = "the evaluator's speed with faster-coco-eval vs pycocotools, and that their APs agree"


def add_arguments(parser) -> None:
    parser.add_argument("--images", type=at_least(1), default=500, metavar="N", help="images of detections (500)")
    parser.add_argument(
        "--categories", type=at_least(1), default=80, metavar="K", help="categories, each object's drawn at random (80, as COCO)"
    )
    parser.add_argument("--repeats", type=at_least(1), default=3, metavar="R", help="timed runs per backend (3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data (0)")
    parser.add_argument("--json", metavar="OUT", help="also write the figures and every metric to this JSON file")


def run(args) -> int:
    report = benchmark_evaluator(args.images, num_categories=args.categories, repeats=args.repeats, seed=args.seed)
    print(
        f"{report['num_images']} images, {report['num_categories']} categories, "
        f"{report['num_annotations']} objects, {report['num_detections']} detections"
    )
    for backend, seconds in report["seconds"].items():
        print(f"{backend:20s} {seconds:8.3f} s (median of {report['repeats']})")
    print(
        f"speed-up {report['speedup']:.2f}x; every AP identical: {report['identical_ap']} "
        f"(largest difference {report['max_abs_diff']:.2g} AP)"
    )
    if args.json:
        atomic_write_json(args.json, report)
    return 0 if report["identical_ap"] else 1
