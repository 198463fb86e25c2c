"""Scoring a model's eval outputs against COCO ground truth."""
from .coco import BACKENDS, COCOEvaluator, output_to_coco_results

__all__ = ["BACKENDS", "COCOEvaluator", "output_to_coco_results"]
