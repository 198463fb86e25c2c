import highdicom as hd
import numpy as np
import pydicom
from pydicom.uid import generate_uid

from gn_detection.deploy.dicom_seg import write_dicom_seg
from tests.helpers import write_dicom


def test_a_seg_read_back_holds_each_class_masks_union(tmp_path):
    film = write_dicom(tmp_path / "film.dcm", np.arange(60 * 80, dtype=np.uint16).reshape(60, 80) % 4096,
                       bits_stored=12, StudyInstanceUID=generate_uid(), SeriesInstanceUID=generate_uid(),
                       FrameOfReferenceUID=generate_uid())
    masks = np.zeros((3, 60, 80), dtype=np.float32)
    masks[0, 5:20, 10:30] = 0.9
    masks[1, 30:50, 40:70] = 0.7
    masks[2, 15:25, 25:45] = 0.6  # class 1 again, overlapping the first
    masks[2, 40:45, 5:10] = 0.4  # below the 0.5 threshold
    detections = {"labels": np.array([1, 3, 1]), "masks": masks, "scores": np.array([0.9, 0.8, 0.7])}
    write_dicom_seg(film, detections, ["nodule", "mass", "effusion"], str(tmp_path / "seg.dcm"))

    seg = hd.seg.segread(tmp_path / "seg.dcm")
    source = pydicom.dcmread(film)
    assert seg.StudyInstanceUID == source.StudyInstanceUID
    assert seg.FrameOfReferenceUID == source.FrameOfReferenceUID
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["nodule", "mass", "effusion"]
    pixels = seg.get_pixels_by_source_instance([source.SOPInstanceUID], segment_numbers=[1, 2, 3])[0]
    expected = np.stack([(masks[0] >= 0.5) | (masks[2] >= 0.5), np.zeros((60, 80), bool), masks[1] >= 0.5], axis=-1)
    np.testing.assert_array_equal(pixels.astype(bool), expected)
