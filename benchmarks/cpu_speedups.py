"""What each CPU speed-up of the training step is worth, measured side by side.

    python benchmarks/cpu_speedups.py [--config-file CFG] [--size S] [--iters N]

For fp32 and bf16, it times GN R-50-FPN's training step as shipped, with the backbone in NCHW
(MODEL.CHANNELS_LAST False) and with torchvision's RoIAlign in place of the sparse-matrix one,
interleaved in one process, and prints each variant's median and its ratio to the shipped one.
"""
import argparse
import statistics

import torchvision

import gn_detection.modeling.poolers as poolers
from gn_detection.benchmark.models import _build_variants, synthetic_batch
from gn_detection.commands.common import input_size_opts, setup_cfg


def torchvision_roi_align(input, rois, output_size, spatial_scale, sampling_ratio, aligned):
    return torchvision.ops.roi_align(input, rois.to(input.dtype), output_size, spatial_scale, sampling_ratio, aligned)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default="configs/COCO-GN/mask_rcnn_R_50_FPN_3x_gn.yaml")
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5)
    args = parser.parse_args()

    opts = input_size_opts(args.size)
    shipped = setup_cfg(args.config_file, opts)
    nchw = setup_cfg(args.config_file, opts + ["MODEL.CHANNELS_LAST", "False"])
    images, targets = synthetic_batch(args.batch, args.size, shipped.MODEL.ROI_HEADS.NUM_CLASSES)
    roi_aligns = {"shipped": poolers.roi_align, "NCHW backbone": poolers.roi_align, "torchvision RoIAlign": torchvision_roi_align}
    cfgs = {"shipped": shipped, "NCHW backbone": nchw, "torchvision RoIAlign": shipped}
    variants = []
    for precision in ("fp32", "bf16"):
        for name, cfg in cfgs.items():
            (variant,) = _build_variants({f"{name} [{precision}]": cfg}, [], [precision], images, targets)
            variant.roi_align = roi_aligns[name]
            variants.append(variant)
    for i in range(1 + args.iters):  # one warm-up round
        for variant in variants:
            poolers.roi_align = variant.roi_align
            seconds = variant.train_step()
            if i:
                variant.train_times.append(seconds)
    medians = {v.name: statistics.median(v.train_times) for v in variants}
    for v in variants:
        reference = medians[f"shipped [{v.precision}]"]
        print(f"{v.name:32s} {medians[v.name]:7.3f} s/step  {medians[v.name] / reference:5.2f}x the shipped step")


if __name__ == "__main__":
    main()
