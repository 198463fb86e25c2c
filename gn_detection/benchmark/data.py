"""What COCO-sized data costs: loading the JSON (time, peak memory) with this package's loader,
detectron2's and pycocotools', and the unique memory of DataLoader workers that hold the records
as a Python list or serialized.

Each load runs in a fresh spawned process, so that one loader's leftovers do not count against
the next, and that process imports only what its loader needs: this module leaves torch to the
worker measurement, gn_detection's and pycocotools' loaders do not import it, detectron2's does
(``detectron2.data`` needs it), and a training process has it (~0.7 GB) on top. Memory figures
are resident set sizes from /proc (Linux only).
"""
import multiprocessing
import os
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, List

import numpy as np

from ..data.coco import load_coco_json

__all__ = ["LOADERS", "RECORD_LAYOUTS", "measure_load", "measure_worker_memory"]

LOADERS = ("gn_detection", "detectron2", "pycocotools")
RECORD_LAYOUTS = ("list", "serialized")
_MB = 1024 * 1024


def measure_load(json_file: str, loader: str) -> Dict:
    """Load ``json_file`` with ``loader`` (one of LOADERS) in a fresh process: its seconds, the
    process's peak RSS, and what the load added to the RSS the process had after its imports."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_load_in_this_process, (json_file, loader))


def _load_in_this_process(json_file: str, loader: str) -> Dict:
    if loader == "detectron2":
        from detectron2.data.datasets.coco import load_coco_json as load
    elif loader == "pycocotools":
        from pycocotools.coco import COCO as load
    else:
        load = load_coco_json
    arguments = (json_file,) if loader == "pycocotools" else (json_file, os.path.dirname(json_file))
    before = _rss_bytes()
    start = time.perf_counter()
    loaded = load(*arguments)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    del loaded
    return dict(loader=loader, seconds=seconds, peak_rss_mb=peak / _MB, added_mb=(peak - before) / _MB,
                torch_imported="torch" in sys.modules)


def measure_worker_memory(json_file: str, workers: int, layout: str) -> List[float]:
    """In a fresh process, as a training process does: load ``json_file``, hold its records as
    ``layout`` (one of RECORD_LAYOUTS), and let ``workers`` forked DataLoader workers read every
    record's boxes, classes and polygons once, as a mapper does; return each worker's unique
    memory (USS) in MB after that pass. A fresh process, because a worker's allocations land in
    whatever free space its parent's heap has, and copy those pages: a long-lived parent (a test
    run, a notebook) would blur the records' own cost."""
    # an executor's process, unlike a Pool's, is not a daemon, so it may start the workers
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as executor:
        return executor.submit(_worker_memory_in_this_process, json_file, workers, layout).result()


def _worker_memory_in_this_process(json_file: str, workers: int, layout: str) -> List[float]:
    from torch.utils.data import DataLoader

    from ..data.serialized_list import SerializedList

    records = load_coco_json(json_file, os.path.dirname(json_file)).records
    held = SerializedList(records) if layout == "serialized" else records
    del records
    loader = DataLoader(
        _AnnotationReader(held),
        batch_size=64,
        num_workers=workers,
        collate_fn=_as_list,
        persistent_workers=True,
        multiprocessing_context="fork",
    )
    pids = {pid for batch in loader for pid, _ in batch}  # the workers stay up: persistent
    return [_uss_bytes(pid) / _MB for pid in sorted(pids)]


def _as_list(batch: list) -> list:
    return batch


class _AnnotationReader:  # a map-style dataset: DataLoader needs only len and []
    def __init__(self, records):
        self.records = records

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int):
        annotations = self.records[index]["annotations"]
        boxes = np.array([a["bbox"] for a in annotations], dtype=np.float32).reshape(-1, 4)
        classes = [a["category_id"] for a in annotations]
        coordinates = [float(v) for a in annotations for polygon in a["segmentation"] for v in polygon]
        return os.getpid(), (len(boxes), len(classes), len(coordinates))


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _uss_bytes(pid: int) -> int:
    """Private pages (clean and dirty) of process ``pid``: what killing it would give back."""
    total = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith(("Private_Clean:", "Private_Dirty:", "Private_Hugetlb:")):
                total += int(line.split()[1]) * 1024
    return total
