"""Run a model exported by ``gn-detect export`` on images or DICOM files: COCO-format detections
(``detections.json``, masks as RLE) and one overlay PNG per input in --output, and with
--dicom-seg a DICOM Segmentation per DICOM input. With an ONNX model
this needs onnxruntime, NumPy, Pillow and, for DICOM, pydicom: not torch. The DICOM window and
input format come from the export's deploy.json, so a film is read as in training."""
import json
import logging
import os
from typing import Dict, List

import numpy as np

from ..data.dicom import is_dicom
from ..deploy.dicom_seg import write_dicom_seg
from ..deploy.predictor import ExportedPredictor
from ..utils.file_io import atomic_write, check_writable_folder
from ..utils.visualizer import draw_instances, save_png
from .arguments import at_least, probability

HELP = "detections of an exported model (ONNX without torch) on images or DICOM files"

logger = logging.getLogger("gn_detection")


def add_arguments(parser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR", help="a folder written by gn-detect export")
    parser.add_argument("--input", required=True, nargs="+", metavar="FILE", help="images or DICOM files")
    parser.add_argument("--output", required=True, metavar="DIR", help="folder for detections.json and the PNGs")
    parser.add_argument("--confidence-threshold", type=probability, default=0.5, metavar="T",
                        help="keep detections scoring at least T (0.5)")
    parser.add_argument("--dicom-seg", action="store_true",
                        help="also write each DICOM input's masks as a DICOM Segmentation, <name>_seg.dcm (needs highdicom)")
    parser.add_argument("--threads", type=at_least(0), default=0, metavar="N",
                        help="onnxruntime threads (0: all cores)")


def run(args) -> int:
    check_writable_folder(args.output, "--output")
    predictor = ExportedPredictor(args.model, threads=args.threads)
    results: List[Dict] = []
    for image_id, path in enumerate(args.input, start=1):
        image, detections = predictor(path)
        keep = detections["scores"] >= args.confidence_threshold
        detections = {k: v[keep] for k, v in detections.items()}
        results += coco_results(detections, image_id, os.path.basename(path))
        drawn = draw_instances(image, boxes=detections["boxes"], labels=detections["labels"],
                               scores=detections["scores"], masks=detections["masks"],
                               class_names=predictor.class_names)
        stem = os.path.join(args.output, os.path.splitext(os.path.basename(path))[0])
        save_png(drawn, stem + ".png")
        if args.dicom_seg and is_dicom(path):
            write_dicom_seg(path, detections, predictor.class_names, stem + "_seg.dcm")
        logger.info("%s: %d detections scoring >= %.2f; wrote %s.png", path, int(keep.sum()), args.confidence_threshold, stem)
    out = os.path.join(args.output, "detections.json")
    atomic_write(out, lambda f: f.write(json.dumps(results).encode("utf-8")))
    print(f"wrote {out} ({len(results)} detections on {len(args.input)} images)")
    return 0


def coco_results(detections: Dict[str, np.ndarray], image_id: int, file_name: str) -> List[Dict]:
    """COCO result entries: XYWH boxes and masks as uncompressed RLE (no pycocotools needed)."""
    entries = []
    for box, score, label, mask in zip(detections["boxes"], detections["scores"], detections["labels"],
                                       detections["masks"]):
        x0, y0, x1, y1 = (float(v) for v in box)
        entries.append(dict(image_id=image_id, file_name=file_name, category_id=int(label), score=float(score),
                            bbox=[x0, y0, x1 - x0, y1 - y0], segmentation=uncompressed_rle(mask >= 0.5)))
    return entries


def uncompressed_rle(mask: np.ndarray) -> Dict:
    """COCO's uncompressed RLE: run lengths over the pixels in column-major order, zeros first."""
    pixels = np.asarray(mask, dtype=bool).ravel(order="F")
    changes = np.flatnonzero(pixels[1:] != pixels[:-1]) + 1
    bounds = np.concatenate([[0], changes, [pixels.size]])
    runs = np.diff(bounds).tolist()
    if pixels.size and pixels[0]:
        runs = [0] + runs
    return {"size": list(mask.shape), "counts": runs}
