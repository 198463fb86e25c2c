"""A synthetic radiograph as a DICOM file, with what readers must honour: MONOCHROME1 or 2, a
rescale intercept, a display window; UIDs from the file's identity, so equal arguments give
byte-identical files."""
import uuid
from pathlib import Path
from typing import List, Tuple

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ComputedRadiographyImageStorage, DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian

from .chest import BITS_STORED, MAX_VALUE

__all__ = ["write_radiograph"]

FIELD_OF_VIEW_MM = 350.0
STUDY_DATE = "20000101"  # fixed, so that files are reproducible


def write_radiograph(
    path: Path, pixels: np.ndarray, *, uid_sources: List[str], image_id: int, window: Tuple[int, int],
    monochrome1: bool, intercept: int, modality: str,
) -> None:
    """Write MONOCHROME2 ``pixels`` (uint16, 0..MAX_VALUE) as a DICOM chest radiograph.

    MONOCHROME1 files store MAX_VALUE - pixels. ``window`` (centre, width) is in MONOCHROME2 stored
    units; the file holds it in modality units (after the rescale), inverted with the pixels for
    MONOCHROME1.
    """
    def uid(kind: str) -> str:
        # A "2.25." UID from a name-based UUID (ISO/IEC 9834-8), so equal arguments give equal UIDs.
        # Not pydicom's generate_uid: with prefix=None it ignores entropy_srcs and is random.
        return f"2.25.{uuid.uuid5(uuid.NAMESPACE_URL, '/'.join([*uid_sources, kind])).int}"

    size = pixels.shape[0]
    centre, width = window
    stored = MAX_VALUE - pixels if monochrome1 else pixels
    if monochrome1:
        centre = MAX_VALUE - centre

    sop_class = ComputedRadiographyImageStorage if modality == "CR" else DigitalXRayImageStorageForPresentation
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = uid("image")
    meta.TransferSyntaxUID = ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = uid("study")
    ds.SeriesInstanceUID = uid("series")
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.Modality = modality
    ds.StudyDate = ds.SeriesDate = STUDY_DATE
    ds.PatientName = "Synthetic^Chest"
    ds.PatientID = f"GN{image_id:06d}"
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = image_id
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.PatientOrientation = ["L", "F"]
    ds.ImagerPixelSpacing = [round(FIELD_OF_VIEW_MM / size, 4)] * 2
    if modality == "DX":
        ds.PresentationIntentType = "FOR PRESENTATION"
    ds.BurnedInAnnotation = "NO"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.PresentationLUTShape = "INVERSE" if monochrome1 else "IDENTITY"
    ds.Rows = ds.Columns = size
    ds.BitsAllocated = 16
    ds.BitsStored = BITS_STORED
    ds.HighBit = BITS_STORED - 1
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = intercept
    ds.RescaleSlope = 1
    ds.RescaleType = "US"
    ds.WindowCenter = centre + intercept
    ds.WindowWidth = width
    ds.VOILUTFunction = "LINEAR"
    ds.PixelData = stored.astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
