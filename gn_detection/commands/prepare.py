"""Build a COCO instances JSON from a folder of images with masks (one PNG per instance, or a label
map per image) or a CSV of boxes, check it, and print a report. Instance masks are named
<image stem>__<class>__<k>.png; label maps <image stem>.png with pixel value v = class v
(1-based); the CSV has the header image,x1,y1,x2,y2,label (pixels)."""
import os

from ..datasets.prepare import prepare_from_csv, prepare_from_masks
from ..utils.errors import UserError
from ..utils.file_io import check_writable_folder

HELP = "build and check COCO JSON from images + masks, or a CSV of boxes"


def add_arguments(parser) -> None:
    parser.add_argument("--images", required=True, metavar="DIR", help="folder of images (PNG, JPEG, TIFF, DICOM)")
    parser.add_argument("--masks", metavar="DIR", help="folder of mask PNGs")
    parser.add_argument(
        "--layout", choices=["instances", "label_map"], default="instances", help="how --masks is laid out"
    )
    parser.add_argument("--csv", metavar="FILE", help="CSV of boxes instead of masks (masks become the boxes)")
    parser.add_argument("--classes", nargs="+", metavar="NAME", help="class names in label order")
    parser.add_argument("--output", required=True, metavar="JSON", help="where to write the COCO JSON")


def run(args) -> int:
    if bool(args.masks) == bool(args.csv):
        raise UserError("prepare takes either --masks DIR or --csv FILE")
    check_writable_folder(os.path.dirname(os.path.abspath(args.output)), "--output's folder")
    if args.masks:
        if not args.classes:
            raise UserError("--masks needs --classes NAME [NAME ...] (label value or mask-name class order)")
        report = prepare_from_masks(args.images, args.masks, args.output, class_names=args.classes, layout=args.layout)
    else:
        report = prepare_from_csv(args.images, args.csv, args.output, class_names=args.classes or None)
    print(report.summary())
    return 0
