"""Detections on a DICOM film as a DICOM Segmentation (highdicom) that a radiology viewer opens
over the film: one binary segment per class, the union of that class's masks, in the film's
study, with its frame of reference where it has one."""
from typing import Dict, Sequence

import numpy as np
import pydicom

from .. import __version__
from ..utils.errors import UserError
from ..utils.file_io import atomic_write

__all__ = ["write_dicom_seg"]

# Type 2 attributes a SEG copies from its source: they must be present, even if empty. Films
# straight from a modality have them; anonymized or synthetic ones may not.
_PATIENT_AND_STUDY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                      "ReferringPhysicianName", "AccessionNumber", "StudyID")


def write_dicom_seg(source_path: str, detections: Dict[str, np.ndarray], class_names: Sequence[str],
                    output_path: str, mask_threshold: float = 0.5) -> None:
    """Write ``detections`` (``labels`` in 1..K, ``masks`` (D, H, W) probabilities on the film's
    pixels) on the DICOM file ``source_path`` to ``output_path`` as a SEG with K segments."""
    try:
        import highdicom as hd
        from pydicom.sr.codedict import codes
    except ImportError:
        raise UserError("writing DICOM SEG needs highdicom: pip install gn_detection[medical]") from None
    source = pydicom.dcmread(source_path)
    for keyword in _PATIENT_AND_STUDY:
        if keyword not in source:
            setattr(source, keyword, "")
    height, width = int(source.Rows), int(source.Columns)
    masks = np.zeros((1, height, width, len(class_names)), dtype=bool)
    for label, mask in zip(detections["labels"], detections["masks"]):
        masks[0, :, :, int(label) - 1] |= mask >= mask_threshold
    algorithm = hd.AlgorithmIdentificationSequence(
        name="gn_detection Mask R-CNN", version=__version__, family=codes.cid7162.ArtificialIntelligence
    )
    segments = [
        hd.seg.SegmentDescription(
            segment_number=number, segment_label=name,
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.MorphologicallyAbnormalStructure,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm,
        )
        for number, name in enumerate(class_names, start=1)
    ]
    seg = hd.seg.Segmentation(
        source_images=[source], pixel_array=masks, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segments, series_instance_uid=hd.UID(), series_number=9001,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="gn_detection",
        manufacturer_model_name="Mask R-CNN with Group Normalization", software_versions=__version__,
        device_serial_number="none",
    )
    atomic_write(output_path, seg.save_as)
