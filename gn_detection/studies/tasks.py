"""What one run of a classification or video study is: its data, its network, its training, its
metrics and its identity (what decides its result, checked when a study resumes)."""
import logging
from typing import Dict, Mapping, Optional, Union, Sequence

import torch

from ..modeling.backbone import inflate_resnet
from .classification import Schedule, build_classifier, evaluate, moment_gaps, train_classifier
from .engine import Run

__all__ = ["ClassificationTask", "VideoTask", "VIDEO_TEMPORAL_KERNELS"]

logger = logging.getLogger(__name__)

# t of the inflated classifier (stem, 3 stages of 2 basic blocks): 3 in each block's first conv,
# the I3D pattern that lets every stage mix neighbouring frames; 1 in the stem.
VIDEO_TEMPORAL_KERNELS: Mapping[str, Union[int, Sequence[int]]] = {"stem": 1, "res2": 3, "res3": 3, "res4": 3}


class ClassificationTask:
    """Train ``build_classifier`` on (N, C, H, W) images; metrics: the validation error with the
    test-time statistics, and for norms with batch statistics the error with each batch's own
    statistics (``error_batch_stats``) and the gap between batch and running moments."""

    name = "classification"

    def __init__(self, train_images, train_labels, val_images, val_labels, *, schedule: Schedule, width: int,
                 data: str, num_classes: Optional[int] = None):
        self.train_set, self.val_set = (train_images, train_labels), (val_images, val_labels)
        self.num_classes = num_classes or int(train_labels.max()) + 1
        self.schedule, self.width, self.data = schedule, width, data

    def identity(self, run: Run) -> Dict:
        return dict(data=self.data, width=self.width, epochs=self.schedule.epochs,
                    iterations=self.schedule.steps(len(self.train_set[0]), run.batch))

    def build(self, run: Run) -> torch.nn.Module:
        return build_classifier(run.norm, in_channels=self.train_set[0].shape[1], num_classes=self.num_classes,
                                width=self.width, groups=run.groups, channels_per_group=run.channels_per_group)

    def train(self, run: Run, folder: str) -> Dict:
        torch.manual_seed(0 if run.seed is None else run.seed)
        model = self.build(run)
        steps = self.schedule.steps(len(self.train_set[0]), run.batch)
        try:
            train_classifier(model, *self.train_set, batch=run.batch, steps=steps, seed=run.seed or 0)
        except FloatingPointError as e:  # a diverged run is a result too
            return dict(error=float("nan"), diverged=str(e))
        metrics = dict(error=evaluate(model, *self.val_set))
        if any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            metrics["error_batch_stats"] = evaluate(model, *self.val_set, batch=run.batch)
            metrics["moment_gap"] = moment_gaps(model, self.val_set[0], run.batch)
        return metrics


class VideoTask(ClassificationTask):
    """The paper's Kinetics experiment at small scale: the 2-D classifier inflated to 3-D
    (``inflate_resnet`` with ``VIDEO_TEMPORAL_KERNELS``, norms over (T, H, W)) and trained on
    (N, C, T, H, W) clips whose class is a motion."""

    name = "video"

    def build(self, run: Run) -> torch.nn.Module:
        model = build_classifier(run.norm, in_channels=self.train_set[0].shape[1], num_classes=self.num_classes,
                                 width=self.width, groups=run.groups, channels_per_group=run.channels_per_group)
        model.backbone = inflate_resnet(model.backbone, VIDEO_TEMPORAL_KERNELS)
        return model
