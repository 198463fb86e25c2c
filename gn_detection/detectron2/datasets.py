"""gn_detection's datasets in detectron2's catalogs."""
from detectron2.data import DatasetCatalog
from detectron2.data.datasets import register_coco_instances

from ..data.catalog import DATASET_REGISTRY, get_dataset_spec, register_datasets_from_cfg
from ..datasets import BUILTIN_DATASETS, register_builtin_datasets

__all__ = ["register_datasets"]


def register_datasets(cfg) -> None:
    """Register in detectron2's DatasetCatalog and MetadataCatalog every dataset that
    ``DATASETS.TRAIN`` and ``DATASETS.TEST`` name and detectron2 does not know: the entries of
    ``DATASETS.COCO_INSTANCES`` and gn_detection's built-in sets (``shapes_*``, ``xray_*``,
    generated into the cache first; register them small with ``register_builtin_datasets``)."""
    if not all(name in DATASET_REGISTRY for name in BUILTIN_DATASETS):
        register_builtin_datasets()
    register_datasets_from_cfg(cfg)
    for name in dict.fromkeys(tuple(cfg.DATASETS.TRAIN) + tuple(cfg.DATASETS.TEST)):
        if name not in DatasetCatalog.list():
            json_file, image_root = get_dataset_spec(name, "DATASETS").locate()
            register_coco_instances(name, {}, json_file, image_root)
