#!/usr/bin/env python
"""detectron2's tools/train_net.py with the gn_detection plugin: the same command line
(--config-file, --resume, --eval-only, --num-gpus, --num-machines, ..., KEY VALUE overrides),
detectron2's DefaultTrainer as GNTrainer, and the datasets of DATASETS.TRAIN/TEST registered in
detectron2's catalogs (DATASETS.COCO_INSTANCES and gn_detection's built-in sets).

    python tools/train_net_detectron2.py --config-file configs/detectron2/plugin_synthetic_xray_R_18_FPN_gn.yaml
"""
from detectron2.config import get_cfg
from detectron2.engine import default_argument_parser, default_setup, launch

from gn_detection.checkpoint import InputConvention
from gn_detection.detectron2 import GNDetectionCheckpointer, GNTrainer, add_gn_detection_config, register_datasets


def setup(args):
    cfg = get_cfg()
    add_gn_detection_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.freeze()
    default_setup(cfg, args)
    return cfg


def main(args):
    cfg = setup(args)
    register_datasets(cfg)
    if args.eval_only:
        model = GNTrainer.build_model(cfg)
        checkpointer = GNDetectionCheckpointer(model, cfg.OUTPUT_DIR, input=InputConvention.from_config(cfg))
        checkpointer.resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        return GNTrainer.test(cfg, model)
    trainer = GNTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))
