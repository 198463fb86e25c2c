import numpy as np
import pytest
import torch
from PIL import Image

from gn_detection.data.mapper import DatasetMapper, check_polygon_annotations


@pytest.fixture
def record(tmp_path):
    pixels = np.zeros((20, 30, 3), dtype=np.uint8)
    pixels[:, :, 0] = np.arange(30, dtype=np.uint8)[None, :]  # red grows to the right
    pixels[:, :, 2] = 7
    path = tmp_path / "image.png"
    Image.fromarray(pixels).save(path)
    return dict(
        file_name=str(path),
        image_id=5,
        height=20,
        width=30,
        annotations=[
            dict(id=1, bbox=[2.0, 4.0, 12.0, 10.0], category_id=2, segmentation=[[2, 4, 12, 4, 12, 10, 2, 10]], iscrowd=0),
            dict(id=2, bbox=[0.0, 0.0, 30.0, 20.0], category_id=1, segmentation=[[0, 0, 30, 0, 30, 20, 0, 20]], iscrowd=1),
        ],
    )


class FixedDraw:
    def __init__(self, value):
        self.value = value

    def random(self):
        return self.value


def test_training_target_leaves_crowd_out_and_follows_the_format(record):
    out = DatasetMapper(is_train=True, image_format="BGR", flip="none", mask_format="bitmask")(record, FixedDraw(0.0))
    assert out["image"].shape == (3, 20, 30) and out["image"].dtype == torch.float32
    assert out["image"][0, 0, 0] == 7 and out["image"][2, 0, 29] == 29  # BGR: blue first
    target = out["target"]
    assert target["labels"].tolist() == [2]
    assert target["boxes"].tolist() == [[2.0, 4.0, 12.0, 10.0]]
    assert target["masks"].shape == (1, 20, 30) and target["masks"].sum() == 10 * 6
    assert target["masks"][0, 4:10, 2:12].all()
    assert "polygons" not in target


def test_polygon_format_keeps_the_polygons_as_float64_arrays(record):
    target = DatasetMapper(is_train=True, image_format="BGR", flip="none")(record, FixedDraw(0.0))["target"]
    assert "masks" not in target and len(target["polygons"]) == 1  # the crowd region is left out
    (polygon,) = target["polygons"][0]
    assert polygon.dtype == np.float64 and polygon.tolist() == [2, 4, 12, 4, 12, 10, 2, 10]


def test_horizontal_flip_moves_image_box_and_mask_together(record):
    mapper = DatasetMapper(is_train=True, image_format="RGB", flip="horizontal", mask_format="bitmask")
    kept, flipped = mapper(record, FixedDraw(0.9)), mapper(record, FixedDraw(0.1))
    torch.testing.assert_close(flipped["image"], kept["image"].flip(-1))
    assert flipped["target"]["boxes"].tolist() == [[18.0, 4.0, 28.0, 10.0]]
    assert flipped["target"]["masks"][0].equal(kept["target"]["masks"][0].flip(-1))
    assert flipped["target"]["masks"][0, 4:10, 18:28].all()


def test_horizontal_flip_mirrors_the_polygons(record):
    mapper = DatasetMapper(is_train=True, image_format="RGB", flip="horizontal")
    (polygon,) = mapper(record, FixedDraw(0.1))["target"]["polygons"][0]
    assert polygon.tolist() == [28, 4, 18, 4, 18, 10, 28, 10]
    assert record["annotations"][0]["segmentation"][0][0] == 2  # the record itself is untouched


def test_polygon_format_refuses_rle_training_masks_and_names_the_annotation(record):
    check_polygon_annotations([record], "DATASETS.TRAIN")  # polygons, and an RLE-free crowd: fine
    record["annotations"][1]["segmentation"] = {"size": [20, 30], "counts": "abc"}
    check_polygon_annotations([record], "DATASETS.TRAIN")  # crowd regions are not trained on
    record["annotations"][0]["segmentation"] = {"size": [20, 30], "counts": "abc"}
    with pytest.raises(ValueError, match=r"annotation id 1 of .*image.png is an RLE .* INPUT.MASK_FORMAT \"bitmask\""):
        check_polygon_annotations([record], "DATASETS.TRAIN")


def test_unknown_mask_format_is_refused():
    with pytest.raises(ValueError, match="INPUT.MASK_FORMAT='rle'"):
        DatasetMapper(is_train=True, image_format="RGB", mask_format="rle")


def test_evaluation_has_no_target(record):
    out = DatasetMapper(is_train=False, image_format="L")(record)
    assert "target" not in out and out["image"].shape == (1, 20, 30) and out["image_id"] == 5


def test_missing_image_and_wrong_size_name_the_image(record, tmp_path):
    mapper = DatasetMapper(is_train=False, image_format="RGB")
    with pytest.raises(ValueError, match=r"image id 5\).*20x30 \(HxW\) but the annotations say 21x30"):
        mapper(dict(record, height=21))
    with pytest.raises(FileNotFoundError, match=r"image id 5: .*missing\.png"):
        mapper(dict(record, file_name=str(tmp_path / "missing.png")))


def test_bad_settings_name_the_key():
    with pytest.raises(ValueError, match="INPUT.FORMAT='YUV'"):
        DatasetMapper(is_train=True, image_format="YUV")
    with pytest.raises(ValueError, match="INPUT.RANDOM_FLIP='vertical'"):
        DatasetMapper(is_train=True, image_format="RGB", flip="vertical")


def test_intensity_jitter_scales_and_shifts_training_pixels(record):
    class Draws:
        def __init__(self):
            self.values = iter([1.1, 0.05])  # gain, then brightness (an offset of 255 * 0.05)

        def uniform(self, low, high):
            value = next(self.values)
            assert low <= value <= high
            return value

    plain = DatasetMapper(is_train=True, image_format="RGB", flip="none")(record, None)
    jittered = DatasetMapper(is_train=True, image_format="RGB", flip="none", brightness=0.05, contrast=0.2)(record, Draws())
    torch.testing.assert_close(jittered["image"], (plain["image"] * 1.1 + 12.75).clamp(0, 255))
    with pytest.raises(ValueError, match="INPUT.BRIGHTNESS=1.5"):
        DatasetMapper(is_train=True, image_format="RGB", brightness=1.5)


def test_dicom_files_go_through_the_window_and_become_channels(tmp_path):
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    pixels = np.arange(12 * 16, dtype=np.uint16).reshape(12, 16) * 10
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path = tmp_path / "film.dcm"
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 12, 16, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = pixels.tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    from gn_detection.data.dicom import DicomReadOptions, DicomWindow

    record = dict(file_name=str(path), image_id=1, height=12, width=16, annotations=[])
    window = DicomWindow(mode="fixed", center=960.0, width=1920.0)  # pixel values 0..1910
    out = DatasetMapper(is_train=False, image_format="BGR", dicom=DicomReadOptions(window=window))(record)
    assert out["image"].shape == (3, 12, 16)
    assert torch.equal(out["image"][0], out["image"][2])
    expected = np.clip((pixels.astype(np.float64) - 0.0) / 1920.0 * 255.0, 0, 255)
    np.testing.assert_allclose(out["image"][0].numpy(), expected, atol=1.0)
