"""This checkout's training step and inference beside an earlier commit's, interleaved in one process.

    python benchmarks/against_commit.py REF [--config-file CFG] [--size S] [--batch B]
                                            [--precision fp32 bf16] [--iters N]

REF's package and configs are exported with `git archive` into a temporary folder and imported
as ``gn_detection_ref``; each side builds CFG from its own configs folder and times the same
synthetic batch (gn_detection.benchmark.models). It prints each side's median and the ratio of
this checkout to REF. Only the ratio means anything: seconds move with the machine's load.
"""
import argparse
import importlib
import io
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def export(ref: str, destination: Path) -> Path:
    """REF's gn_detection/ as destination/gn_detection_ref, and its configs/ beside it."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref, "gn_detection", "configs"], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(destination, filter="data")
    (destination / "gn_detection").rename(destination / "gn_detection_ref")
    return destination


def layout(package: str):
    """(setup_cfg, input_size_opts, benchmark module) of either side: the commands/ and benchmark/
    packages since the restructure, cli.py and engine/benchmark.py before it."""
    try:
        common = importlib.import_module(f"{package}.commands.common")
        bench = importlib.import_module(f"{package}.benchmark.models")
        return common.setup_cfg, common.input_size_opts, bench
    except ModuleNotFoundError:
        cli = importlib.import_module(f"{package}.cli")
        bench = importlib.import_module(f"{package}.engine.benchmark")
        return cli.setup_cfg, cli._input_size_opts, bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ref", help="the commit to compare with, e.g. HEAD~3 or a hash")
    parser.add_argument("--config-file", default="configs/COCO-GN/mask_rcnn_R_50_FPN_3x_gn.yaml")
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--precision", nargs="+", default=["bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--iters", type=int, default=8)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        ref_root = export(args.ref, Path(tmp))
        sys.path.insert(0, str(ref_root))
        sides = {f"{args.ref}": ("gn_detection_ref", ref_root), "this checkout": ("gn_detection", REPO)}
        variants = []
        for precision in args.precision:
            for label, (package, root) in sides.items():
                setup_cfg, input_size_opts, bench = layout(package)
                cfg = setup_cfg(str(root / args.config_file), input_size_opts(args.size))
                images, targets = bench.synthetic_batch(args.batch, args.size, cfg.MODEL.ROI_HEADS.NUM_CLASSES)
                (variant,) = bench._build_variants({f"{label} [{precision}]": cfg}, [], [precision], images, targets)
                variants.append(variant)
        for i in range(2 + args.iters):  # two warm-up rounds
            for variant in variants:
                train, infer = variant.train_step(), variant.inference()
                if i >= 2:
                    variant.train_times.append(train)
                    variant.infer_times.append(infer)
    for ref, new in zip(variants[0::2], variants[1::2]):
        train = [statistics.median(v.train_times) for v in (ref, new)]
        infer = [statistics.median(v.infer_times) for v in (ref, new)]
        print(f"{ref.name:28s} train {train[0]:.3f} s  inference {infer[0]:.3f} s/image")
        print(f"{new.name:28s} train {train[1]:.3f} s  inference {infer[1]:.3f} s/image  "
              f"({train[1] / train[0]:.3f}x / {infer[1] / infer[0]:.3f}x)")


if __name__ == "__main__":
    main()
