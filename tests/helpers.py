"""What several test modules share: paths, a tiny config, synthetic samples and COCO sets."""
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
TINY_CONFIG = CONFIGS / "tiny" / "mask_rcnn_R_18_FPN_tiny_gn.yaml"

# Every candidate anchor and RoI is sampled and nothing is suppressed or ignored, so each image
# contributes the same number of loss terms and per-process means average to the global mean.
EXACT_SAMPLING = {
    "INPUT.RANDOM_FLIP": "none",
    "INPUT.MIN_SIZE_TRAIN": "(96,)",
    "MODEL.RPN.BATCH_SIZE_PER_IMAGE": "1000000",
    "MODEL.RPN.POSITIVE_FRACTION": "1.0",
    "MODEL.RPN.IOU_THRESHOLDS": "[0.5, 0.5]",
    "MODEL.RPN.NMS_THRESH": "1.0",
    "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE": "1000000",
    "MODEL.ROI_HEADS.POSITIVE_FRACTION": "1.0",
    # Only the ground-truth boxes added to the proposals reach IoU 1: a fixed number of positives.
    "MODEL.ROI_HEADS.IOU_THRESHOLDS": "[1.0]",
    "SOLVER.MAX_ITER": "3",
    "SOLVER.STEPS": "()",
    "SOLVER.WARMUP_ITERS": "0",
    "SOLVER.CHECKPOINT_PERIOD": "100",
}


def make_sample(height: int, width: int, num_instances: int, num_classes: int, seed: int):
    """A random image in 0-255 with rectangular instances: their boxes, labels and masks."""
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(3, height, width, generator=g) * 255
    boxes, masks = [], torch.zeros(num_instances, height, width, dtype=torch.uint8)
    for i in range(num_instances):
        w = int(torch.randint(width // 6, width // 2, (1,), generator=g))
        h = int(torch.randint(height // 6, height // 2, (1,), generator=g))
        x0 = int(torch.randint(0, width - w, (1,), generator=g))
        y0 = int(torch.randint(0, height - h, (1,), generator=g))
        boxes.append([x0, y0, x0 + w, y0 + h])
        masks[i, y0 : y0 + h, x0 : x0 + w] = 1
        image[:, y0 : y0 + h, x0 : x0 + w] = 40.0 * (i + 1)
    labels = torch.randint(1, num_classes + 1, (num_instances,), generator=g)
    return image, dict(boxes=torch.tensor(boxes, dtype=torch.float32), labels=labels, masks=masks)


def write_coco_dataset(root, samples, num_classes: int = 3) -> str:
    """Write ``make_sample`` outputs as PNGs and a COCO JSON with polygon masks; return the JSON path."""
    images, annotations = [], []
    for image_id, (image, target) in enumerate(samples, start=1):
        file_name = f"{image_id:04d}.png"
        pixels = image.permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
        Image.fromarray(np.ascontiguousarray(pixels)).save(root / file_name)
        images.append(dict(id=image_id, file_name=file_name, height=pixels.shape[0], width=pixels.shape[1]))
        for (x0, y0, x1, y1), label in zip(target["boxes"].tolist(), target["labels"].tolist()):
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=image_id,
                    category_id=label,
                    bbox=[x0, y0, x1 - x0, y1 - y0],
                    area=(x1 - x0) * (y1 - y0),
                    segmentation=[[x0, y0, x1, y0, x1, y1, x0, y1]],
                    iscrowd=0,
                )
            )
    categories = [dict(id=k, name=f"class{k}") for k in range(1, num_classes + 1)]
    path = root / "instances.json"
    path.write_text(json.dumps(dict(images=images, annotations=annotations, categories=categories)))
    return str(path)


def pycocotools_ap(json_file, detections_file, iou_type: str) -> float:
    """AP (in percent) of a detections file against a COCO JSON, by pycocotools alone: what the
    evaluator must report for the same detections."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    detections = [d for d in json.loads(Path(detections_file).read_text()) if iou_type == "bbox" or "segmentation" in d]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(json_file))
        evaluation = COCOeval(gt, gt.loadRes(detections), iou_type)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return float(evaluation.stats[0]) * 100


def write_dicom(path, pixels: np.ndarray, *, bits_stored: int = None, photometric: str = "MONOCHROME2",
           **elements) -> str:
    """Write ``pixels`` ((H, W) or (frames, H, W), uint8/uint16/int16) as an uncompressed DICOM file."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    if pixels.ndim == 3:
        ds.NumberOfFrames = pixels.shape[0]
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(pixels.dtype.kind == "i")
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    ds.PixelData = pixels.astype(pixels.dtype.newbyteorder("<")).tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    return str(path)
