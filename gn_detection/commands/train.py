"""Train a config's model (DATASETS.TRAIN), evaluating on DATASETS.TEST; or evaluate only.
Checkpoints, metrics.json, TensorBoard events, log.txt and inference/results.json go to OUTPUT_DIR."""
import json

from ..checkpoint import Checkpointer, InputConvention, load_weights
from ..engine.defaults import run_evaluation, run_training
from ..engine.launch import launch
from ..modeling import build_model
from ..utils import comm
from ..utils.errors import UserError
from ..utils.file_io import check_writable_folder
from ..utils.logger import setup_logging
from .common import add_config_arguments, register_datasets, setup_cfg

HELP = "train and evaluate (COCO box and mask AP)"


def add_arguments(parser) -> None:
    parser.add_argument(
        "--resume", action="store_true",
        help="continue from OUTPUT_DIR/last_checkpoint (model, optimizer, schedule, data order, RNGs); "
        "starts fresh, and says so, when there is none",
    )
    parser.add_argument(
        "--eval-only", action="store_true",
        help="evaluate MODEL.WEIGHTS (or the last checkpoint in OUTPUT_DIR) on DATASETS.TEST; no training",
    )
    parser.add_argument(
        "--num-gpus", type=int, default=1, metavar="N",
        help="processes on this machine, one per GPU (on a machine without GPUs: CPU processes with gloo). "
        "Under torchrun this is ignored and torchrun's processes are used",
    )
    add_config_arguments(parser)


def run(args) -> int:
    cfg = setup_cfg(args.config_file, args.opts)
    if args.eval_only and not cfg.DATASETS.TEST:
        raise UserError("--eval-only: DATASETS.TEST is empty; name the datasets to evaluate on")
    check_writable_folder(cfg.OUTPUT_DIR, "OUTPUT_DIR")  # before the log file goes there
    launch(_main, args.num_gpus, args=(cfg, args.resume, args.eval_only))
    return 0


def _main(cfg, resume: bool, eval_only: bool) -> None:
    """Runs in every process of the job (see engine.launch)."""
    setup_logging(cfg.OUTPUT_DIR, comm.get_rank())
    register_datasets(cfg)  # again: a spawned process starts with empty registries
    if eval_only:
        model = build_model(cfg)
        weights = cfg.MODEL.WEIGHTS or Checkpointer(cfg.OUTPUT_DIR, model=model).last_checkpoint()
        if not weights:
            raise UserError(f"--eval-only needs MODEL.WEIGHTS or a checkpoint in OUTPUT_DIR={cfg.OUTPUT_DIR}")
        load_weights(model, weights, input=InputConvention.from_config(cfg))
        results = run_evaluation(cfg, model)
    else:
        results = run_training(cfg, resume=resume)
    if comm.is_main_process() and results:
        print(json.dumps(_ap_summary(results), indent=1))


def _ap_summary(results: dict) -> dict:
    return {
        name: {
            task: {k: round(v, 2) for k, v in metrics.items() if not k.startswith("AP-")}
            for task, metrics in tasks.items()
        }
        for name, tasks in results.items()
    }
