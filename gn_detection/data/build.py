"""Data loaders for training and evaluation, built from ``DATASETS``, ``DATALOADER``, ``INPUT``."""
import logging
from typing import List, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..utils import comm
from ..utils.errors import UserError
from .catalog import load_dataset
from .coco import CocoInstances
from .mapper import DatasetMapper, check_polygon_annotations
from .samplers import SampleKey, TrainingBatchSampler, inference_shard
from .serialized_list import SerializedList

__all__ = ["build_train_loader", "build_test_loader", "load_datasets"]

logger = logging.getLogger(__name__)


def load_datasets(names: Sequence[str], *, filter_empty: bool, key: str) -> CocoInstances:
    """The records of several registered datasets, which must share one class list."""
    if not names:
        raise UserError(f"{key} is empty; name at least one registered dataset")
    parts = [load_dataset(name, filter_empty=filter_empty, key=key) for name in names]
    for name, part in zip(names[1:], parts[1:]):
        if part.thing_classes != parts[0].thing_classes:
            raise UserError(
                f"{key}: {name!r} has classes {part.thing_classes} but {names[0]!r} has "
                f"{parts[0].thing_classes}; datasets trained together need one class list"
            )
    records = [r for part in parts for r in part.records]
    return CocoInstances(records=records, thing_classes=parts[0].thing_classes, category_ids=parts[0].category_ids)


class _TrainingSamples(Dataset):
    """Maps a (stream position, record index) key to a sample; the position seeds the sample's
    augmentation, so it is the same whatever process or worker reads it. The records are
    serialized, so that workers share them instead of copying them."""

    def __init__(self, records: List[dict], mapper: DatasetMapper, seed: int):
        self.records, self.mapper, self.seed = SerializedList(records), mapper, seed

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: SampleKey) -> dict:
        position, index = key
        return self.mapper(self.records[index], np.random.default_rng([self.seed, position]))


class _InferenceSamples(Dataset):
    def __init__(self, records: List[dict], mapper: DatasetMapper):
        self.records, self.mapper = SerializedList(records), mapper

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        return self.mapper(self.records[index])


def _collate(batch: list) -> list:
    return batch


def _check_num_classes(cfg, dataset: CocoInstances, key: str) -> None:
    if len(dataset.thing_classes) != cfg.MODEL.ROI_HEADS.NUM_CLASSES:
        raise UserError(
            f"{key} has {len(dataset.thing_classes)} classes {dataset.thing_classes} but "
            f"MODEL.ROI_HEADS.NUM_CLASSES={cfg.MODEL.ROI_HEADS.NUM_CLASSES}; set it to {len(dataset.thing_classes)}"
        )


def build_train_loader(cfg, *, seed: int, start_iter: int = 0) -> DataLoader:
    """An endless loader of this process's share of each global batch (a list of mapper dicts)."""
    dataset = load_datasets(
        cfg.DATASETS.TRAIN, filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS, key="DATASETS.TRAIN"
    )
    _check_num_classes(cfg, dataset, "DATASETS.TRAIN")
    if cfg.MODEL.MASK_ON and cfg.INPUT.MASK_FORMAT == "polygon":
        check_polygon_annotations(dataset.records, "DATASETS.TRAIN")
    logger.info("training on %d images of %s", len(dataset.records), ", ".join(cfg.DATASETS.TRAIN))
    sampler = TrainingBatchSampler(
        [r["width"] / r["height"] for r in dataset.records],
        global_batch_size=cfg.SOLVER.IMS_PER_BATCH,
        rank=comm.get_rank(),
        world_size=comm.get_world_size(),
        seed=seed,
        group_by_aspect_ratio=cfg.DATALOADER.ASPECT_RATIO_GROUPING,
        start_iter=start_iter,
    )
    mapper = DatasetMapper(**DatasetMapper.from_config(cfg, is_train=True))
    return DataLoader(
        _TrainingSamples(dataset.records, mapper, seed),
        batch_sampler=sampler,
        num_workers=cfg.DATALOADER.NUM_WORKERS,
        collate_fn=_collate,
        pin_memory=torch.device(cfg.MODEL.DEVICE).type == "cuda",
        persistent_workers=cfg.DATALOADER.NUM_WORKERS > 0,
        # Its own generator, so creating the loader leaves the global RNG (and resumes) untouched.
        generator=torch.Generator().manual_seed(seed),
    )


def build_test_loader(cfg, dataset_name: str) -> Tuple[DataLoader, CocoInstances]:
    """One image per batch, this process's contiguous share of ``dataset_name`` (all images,
    with or without annotations), and the whole dataset's records and classes."""
    dataset = load_datasets([dataset_name], filter_empty=False, key="DATASETS.TEST")
    _check_num_classes(cfg, dataset, "DATASETS.TEST")
    shard = inference_shard(len(dataset.records), comm.get_rank(), comm.get_world_size())
    mapper = DatasetMapper(**DatasetMapper.from_config(cfg, is_train=False))
    loader = DataLoader(
        _InferenceSamples([dataset.records[i] for i in shard], mapper),
        batch_size=1,
        num_workers=cfg.DATALOADER.NUM_WORKERS,
        collate_fn=_collate,
        generator=torch.Generator().manual_seed(0),
    )
    return loader, dataset
