"""Export a trained model for deployment: ``model.onnx`` (runs in onnxruntime, with a dynamic image
size) or ``model.pt2`` (a torch.export program), and ``deploy.json`` with the class names and how
to read and resize an image (INPUT.FORMAT, INPUT.DICOM, INPUT.MIN/MAX_SIZE_TEST, RESIZE_STYLE),
for ``gn-detect predict --model DIR``. With --check IMG..., the export is run beside the eager
model on those images: their detections compared and their times per image, in check.json."""
import json
import os

from ..export import EXPORT_FORMATS, export_model
from ..export.check import compare_with_eager
from ..utils.errors import UserError
from ..utils.file_io import atomic_write_json, check_writable_folder
from .arguments import at_least
from .common import add_config_arguments, class_names, setup_cfg

HELP = "export a model to ONNX or a torch.export program, for gn-detect predict"


def add_arguments(parser) -> None:
    parser.add_argument("--weights", required=True, metavar="W",
                        help="weights to export (any MODEL.WEIGHTS accepts; gn-detect build --save writes random ones)")
    parser.add_argument("--format", required=True, choices=EXPORT_FORMATS, help="onnx or pt2")
    parser.add_argument("--output", required=True, metavar="DIR", help="folder for the model file and deploy.json")
    parser.add_argument("--check", nargs="+", metavar="IMG", default=[],
                        help="compare the export with the eager model on these images (detections and time)")
    parser.add_argument("--repeats", type=at_least(0), default=3, metavar="R",
                        help="timed runs per image for --check (3; 0 compares the detections only)")
    add_config_arguments(parser)


def run(args) -> int:
    cfg = setup_cfg(args.config_file, args.opts)
    if cfg.MODEL.DEVICE != "cpu":
        raise UserError(f"MODEL.DEVICE={cfg.MODEL.DEVICE!r}: export on the CPU (MODEL.DEVICE cpu); the graph runs anywhere")
    if not args.weights:
        raise UserError("--weights is empty: name the checkpoint to export (gn-detect build --save FILE writes a random one)")
    check_writable_folder(args.output, "--output")
    result = export_model(cfg, args.weights, args.format, args.output, class_names(cfg))
    print(f"wrote {result['path']} ({result['bytes'] / 1e6:.1f} MB) in {result['seconds']:.1f} s")
    if args.check:
        report = dict(export=result, **compare_with_eager(cfg, args.weights, args.output, args.check, repeats=args.repeats))
        atomic_write_json(os.path.join(args.output, "check.json"), report)
        for row in report["images"]:
            print(json.dumps(row))
        if args.repeats:
            print("seconds per image: " + ", ".join(f"{k} {v:.3f}" for k, v in report["seconds_per_image"].items())
                  + f"; the export is {report['speedup_over_eager_fp32']:.2f}x eager fp32, "
                  f"{report['speedup_over_eager_bf16']:.2f}x eager bf16 ({report['threads']} threads)")
    return 0
