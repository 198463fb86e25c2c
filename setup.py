from setuptools import find_packages, setup

# Writing ONNX (torch.onnx's exporter needs onnx and onnxscript) and running it (onnxruntime, which
# is all a machine that only predicts needs, beside NumPy, Pillow and pydicom).
EXPORT = ["onnx>=1.16", "onnxscript>=0.3", "onnxruntime>=1.18"]
# The classification study's 'digits' source and its stratified splits (datasets/classification.py).
STUDIES = ["scikit-learn>=1.0"]
MEDICAL = ["pylibjpeg>=2", "pylibjpeg-libjpeg>=2", "pylibjpeg-openjpeg>=2", "pylibjpeg-rle>=2", "pyjpegls>=1.2", "highdicom>=0.22"]

setup(
    name="gn_detection",
    version="0.1.0",
    description="Mask R-CNN with Group Normalization in the backbone, FPN and heads",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["gn_detection", "gn_detection.*"]),
    install_requires=[
        "torch>=2.1",
        "torchvision>=0.16",
        "fvcore>=0.1.5",
        "iopath>=0.1.9",
        "pycocotools>=2.0.6",
        "orjson>=3.9",  # reads COCO train's JSON 3x faster than json (data/json_file.py)
        "pyyaml>=5.1",
        "numpy",
        "Pillow",
        "tabulate",
        "tensorboard",
        "faster-coco-eval>=1.6",
        "pydicom>=2.4",
        "matplotlib",
    ],
    extras_require={
        # DICOM as archives store it: JPEG Baseline/Extended/Lossless and JPEG-LS (libjpeg),
        # JPEG 2000 (openjpeg), RLE, and JPEG-LS near-lossless colour (pyjpegls); DICOM SEG out (highdicom)
        "export": EXPORT,
        "medical": MEDICAL,
        "studies": STUDIES,
        "test": ["pytest>=7", *EXPORT, *MEDICAL, *STUDIES],  # so CI tests the classification sources too
    },
    entry_points={"console_scripts": ["gn-detect=gn_detection.cli:main"]},
)
