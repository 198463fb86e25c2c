"""Convert pretrained weights (Detectron .pkl, detectron2 .pkl/.pth, torchvision, timm or
mmdetection ResNets) to this package's format, and print where every tensor went; or, with
--to detectron2, write any of them (a model trained here among them) as a detectron2
checkpoint. With --config-file the tensors are
matched against that config's model: the report then lists missing model tensors and shape
mismatches too, and the stem is adapted to INPUT.FORMAT."""
from ..checkpoint import InputConvention, convert_checkpoint_file, export_to_detectron2_file
from ..modeling import build_model
from .common import setup_cfg

HELP = "convert Detectron/detectron2/torchvision/timm/mmdetection weights and report where each tensor went"


def add_arguments(parser) -> None:
    parser.add_argument("source", metavar="SRC", help="weights file, http(s) URL, or detectron:// / detectron2:// name")
    parser.add_argument("destination", metavar="DST", help="where to write the converted checkpoint (.pth)")
    parser.add_argument(
        "--format", default="auto",
        help="source format: auto (from the content), detectron, detectron2, torchvision, mmdet, timm, gn_detection",
    )
    parser.add_argument(
        "--to", choices=["gn_detection", "detectron2"], default="gn_detection",
        help="the format written: this package's (default), or detectron2's, with its names and class order",
    )
    parser.add_argument("--strict", action="store_true", help="fail on any unused, missing or mismatched tensor")
    parser.add_argument("--max-items", type=int, default=20, metavar="N", help="list at most N entries per section")
    parser.add_argument("--config-file", metavar="CFG", help="the model the weights are for")
    # "*", not REMAINDER: after SRC DST, REMAINDER would swallow the options that follow.
    parser.add_argument("opts", nargs="*", metavar="KEY VALUE", help="config overrides")


def run(args) -> int:
    model = input = None
    if args.config_file:
        cfg = setup_cfg(args.config_file, args.opts)
        model, input = build_model(cfg), InputConvention.from_config(cfg)
    if args.to == "detectron2":
        report = export_to_detectron2_file(args.source, args.destination, input=input, format=args.format)
    else:
        report = convert_checkpoint_file(
            args.source, args.destination, model=model, input=input, format=args.format, strict=args.strict
        )
    print(report.summary(max_items=args.max_items))
    print(f"wrote {args.destination}")
    return 0
