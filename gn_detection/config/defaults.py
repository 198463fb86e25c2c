"""Every config key, grouped by the part that reads it. Names follow detectron2."""
from .config import CfgNode as CN

_C = CN()

# Read by build_model (modeling/meta_arch/build.py) and MaskRCNN.from_config.
_C.MODEL = CN()
_C.MODEL.META_ARCHITECTURE = "MaskRCNN"
_C.MODEL.DEVICE = "cpu"
# A checkpoint to start from (its "model" entry); ignored when --resume finds a checkpoint.
_C.MODEL.WEIGHTS = ""
_C.MODEL.MASK_ON = True
# The backbone's activations and weights in NHWC order, which oneDNN's convolutions work in: on
# the CPU, 0.88-0.94x the NCHW training step in bf16 and about even in fp32
# (benchmarks/cpu_speedups.py). The heads stay NCHW: PyTorch's GN kernel is faster there.
_C.MODEL.CHANNELS_LAST = True
# torch.compile the backbone: its shapes are fixed by the input size, while the heads' depend on
# the data and would recompile. For GPUs; the first steps at each new input size compile.
_C.MODEL.COMPILE_BACKBONE = False
# Model input: (C, H, W) float pixels in 0-255, channels in INPUT.FORMAT order.
_C.MODEL.PIXEL_MEAN = [103.530, 116.280, 123.675]
_C.MODEL.PIXEL_STD = [1.0, 1.0, 1.0]

# Read by norm_from_cfg, which binds them into every "GN" layer (Wu & He 2018: G=32). A layer's
# groups come from one of NUM_GROUPS (a fixed G) and DIM_PER_GP (Detectron's key: a fixed number of
# channels per group, G = C / DIM_PER_GP, the paper's Table 3); the other is -1. EPSILON is also
# LN's and IN's.
_C.MODEL.GROUP_NORM = CN()
_C.MODEL.GROUP_NORM.NUM_GROUPS = 32
_C.MODEL.GROUP_NORM.DIM_PER_GP = -1
_C.MODEL.GROUP_NORM.EPSILON = 1e-5

# Read by norm_from_cfg for every "BRN" layer (Batch Renorm, Ioffe 2017): r is clipped to
# [1/R_MAX, R_MAX] and d to [-D_MAX, D_MAX]; the GN paper's comparison uses 1.5 and 0.5. R_MAX 1
# and D_MAX 0 make it BN.
_C.MODEL.BATCH_RENORM = CN()
_C.MODEL.BATCH_RENORM.R_MAX = 1.5
_C.MODEL.BATCH_RENORM.D_MAX = 0.5

# Read by build_backbone.
_C.MODEL.BACKBONE = CN()
_C.MODEL.BACKBONE.NAME = "build_resnet_fpn_backbone"
# 0 trains everything (from scratch); 1 freezes the stem; k freezes the stem and res2..res<k>.
_C.MODEL.BACKBONE.FREEZE_AT = 2

# Read by build_resnet_backbone.
_C.MODEL.RESNETS = CN()
_C.MODEL.RESNETS.DEPTH = 50
_C.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
_C.MODEL.RESNETS.NORM = "FrozenBN"
# The conv of every layer with a norm: "" plain, "WS" Weight Standardization (layers/conv.py).
_C.MODEL.RESNETS.CONV = ""
# True: stride in the first 1x1 conv (MSRA/Caffe2 weights); False: in the 3x3 (torchvision, GN).
_C.MODEL.RESNETS.STRIDE_IN_1X1 = True
_C.MODEL.RESNETS.NUM_GROUPS = 1  # ResNeXt cardinality of the 3x3 convs
_C.MODEL.RESNETS.WIDTH_PER_GROUP = 64
_C.MODEL.RESNETS.STEM_OUT_CHANNELS = 64
_C.MODEL.RESNETS.RES2_OUT_CHANNELS = 256

# Read by build_resnet_fpn_backbone.
_C.MODEL.FPN = CN()
_C.MODEL.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
_C.MODEL.FPN.OUT_CHANNELS = 256
_C.MODEL.FPN.NORM = ""
_C.MODEL.FPN.CONV = ""

# Read by build_rpn.
_C.MODEL.ANCHOR_GENERATOR = CN()
# One list of sizes per feature level; one list of ratios, or one per level.
_C.MODEL.ANCHOR_GENERATOR.SIZES = [[32], [64], [128], [256], [512]]
_C.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS = [[0.5, 1.0, 2.0]]
# Round the anchors' corners to whole pixels (torchvision); detectron2 checkpoints need False.
_C.MODEL.ANCHOR_GENERATOR.ROUND = True
_C.MODEL.RPN = CN()
# An anchor's best IoU with the ground truth below 0.3: background (0); 0.7 or more: foreground
# (1); between: ignored (-1). Each box's best anchors are foreground whatever their IoU.
_C.MODEL.RPN.IOU_THRESHOLDS = [0.3, 0.7]
_C.MODEL.RPN.IOU_LABELS = [0, -1, 1]
# Anchors reaching more than this many pixels outside the image are not trained on; -1: all are.
_C.MODEL.RPN.BOUNDARY_THRESH = -1
_C.MODEL.RPN.BATCH_SIZE_PER_IMAGE = 256  # anchors drawn per image; also the losses' normalizer
_C.MODEL.RPN.POSITIVE_FRACTION = 0.5
_C.MODEL.RPN.BBOX_REG_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
# The anchor-delta loss is smooth L1 with this beta; 0 is L1 (detectron2), 1/9 Detectron's.
_C.MODEL.RPN.SMOOTH_L1_BETA = 0.0
_C.MODEL.RPN.LOSS_WEIGHT = 1.0  # scales loss_rpn_cls and loss_rpn_loc
_C.MODEL.RPN.BBOX_REG_LOSS_WEIGHT = 1.0  # scales loss_rpn_loc again
_C.MODEL.RPN.PRE_NMS_TOPK_TRAIN = 2000  # per feature level
_C.MODEL.RPN.PRE_NMS_TOPK_TEST = 1000
_C.MODEL.RPN.POST_NMS_TOPK_TRAIN = 1000  # per image
_C.MODEL.RPN.POST_NMS_TOPK_TEST = 1000
_C.MODEL.RPN.NMS_THRESH = 0.7

# Read by build_roi_heads.
_C.MODEL.ROI_HEADS = CN()
_C.MODEL.ROI_HEADS.NUM_CLASSES = 80  # foreground classes; labels run 1..NUM_CLASSES, 0 is background
_C.MODEL.ROI_HEADS.IN_FEATURES = ["p2", "p3", "p4", "p5"]
# A RoI's best IoU with the ground truth below 0.5: background; at least 0.5: foreground.
_C.MODEL.ROI_HEADS.IOU_THRESHOLDS = [0.5]
_C.MODEL.ROI_HEADS.IOU_LABELS = [0, 1]
# Add the ground-truth boxes to the proposals in training, so the heads see foreground early.
_C.MODEL.ROI_HEADS.PROPOSAL_APPEND_GT = True
_C.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 512
_C.MODEL.ROI_HEADS.POSITIVE_FRACTION = 0.25
_C.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.05
_C.MODEL.ROI_HEADS.NMS_THRESH_TEST = 0.5

# Read by build_box_head and build_roi_heads (pooler, box coder).
_C.MODEL.ROI_BOX_HEAD = CN()
_C.MODEL.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
_C.MODEL.ROI_BOX_HEAD.NUM_CONV = 0
_C.MODEL.ROI_BOX_HEAD.CONV_DIM = 256
_C.MODEL.ROI_BOX_HEAD.NUM_FC = 2
_C.MODEL.ROI_BOX_HEAD.FC_DIM = 1024
_C.MODEL.ROI_BOX_HEAD.NORM = ""
_C.MODEL.ROI_BOX_HEAD.CONV = ""
_C.MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
# The box-delta loss is smooth L1 with this beta; 0 is L1 (detectron2), 1.0 Detectron's.
_C.MODEL.ROI_BOX_HEAD.SMOOTH_L1_BETA = 0.0
_C.MODEL.ROI_BOX_HEAD.BBOX_REG_LOSS_WEIGHT = 1.0
# One set of box deltas for all classes instead of one per class.
_C.MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG = False
_C.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 7
_C.MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO = 0  # 0: adaptive, ceil(RoI size / output size)
# "ROIAlignV2" is RoIAlign with aligned=True (half-pixel offset), as in detectron2.
_C.MODEL.ROI_BOX_HEAD.POOLER_TYPE = "ROIAlignV2"

# Read by build_mask_head and build_roi_heads.
_C.MODEL.ROI_MASK_HEAD = CN()
_C.MODEL.ROI_MASK_HEAD.NAME = "MaskRCNNConvUpsampleHead"
_C.MODEL.ROI_MASK_HEAD.NUM_CONV = 4
_C.MODEL.ROI_MASK_HEAD.CONV_DIM = 256
_C.MODEL.ROI_MASK_HEAD.NORM = ""
_C.MODEL.ROI_MASK_HEAD.CONV = ""
_C.MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION = 14
_C.MODEL.ROI_MASK_HEAD.POOLER_SAMPLING_RATIO = 0
_C.MODEL.ROI_MASK_HEAD.POOLER_TYPE = "ROIAlignV2"
# One mask per RoI instead of one per class.
_C.MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK = False

# Read by build_transform: the model resizes its inputs and maps outputs back to input pixels.
_C.INPUT = CN()
_C.INPUT.MIN_SIZE_TRAIN = (800,)  # one is drawn per image: multi-scale training
_C.INPUT.MAX_SIZE_TRAIN = 1333
_C.INPUT.MIN_SIZE_TEST = 800
_C.INPUT.MAX_SIZE_TEST = 1333
_C.INPUT.FORMAT = "BGR"  # channel order of the model's input, matching PIXEL_MEAN/PIXEL_STD
# How the model resizes its input and maps boxes and masks back: "torchvision" or "detectron2"
# (rounded sizes, antialiased resize to whole pixel values, grid-sample mask pasting).
_C.INPUT.RESIZE_STYLE = "torchvision"
# Read by DatasetMapper: how training targets carry masks, and so how the mask head's targets are
# made (modeling/mask_targets.py). "polygon": the polygons, drawn inside each RoI at the head's
# resolution (an RLE annotation is then an error); "bitmask": full-image masks, cut by each RoI
# with aligned RoIAlign and thresholded at 0.5 (polygons and RLE alike).
_C.INPUT.MASK_FORMAT = "polygon"
# Read by DatasetMapper: "horizontal" flips half of the training images (with their masks).
_C.INPUT.RANDOM_FLIP = "horizontal"
# Read by DatasetMapper: intensity jitter in training, pixels x * U(1 - CONTRAST, 1 + CONTRAST)
# + 255 * U(-BRIGHTNESS, BRIGHTNESS), clipped to 0-255 (exposure varies between radiographs).
_C.INPUT.BRIGHTNESS = 0.0
_C.INPUT.CONTRAST = 0.0
# Read by read_image for DICOM files (data/dicom.py): MODE "file" (the file's VOI LUT or window),
# "fixed" (CENTER/WIDTH, in modality units), "percentile" (PERCENTILES), or "none" (min-max);
# FRAME picks one frame of a multi-frame file.
_C.INPUT.DICOM = CN()
_C.INPUT.DICOM.WINDOW_MODE = "file"
_C.INPUT.DICOM.WINDOW_CENTER = 0.0
_C.INPUT.DICOM.WINDOW_WIDTH = 0.0
_C.INPUT.DICOM.PERCENTILES = (0.5, 99.5)
_C.INPUT.DICOM.FRAME = 0

# Read by build_train_loader / build_test_loader: names given to register_coco_instances.
_C.DATASETS = CN()
_C.DATASETS.TRAIN = ()
_C.DATASETS.TEST = ()
# Your own COCO-format sets, registered by register_datasets_from_cfg before the run:
# [[name, instances json, image folder], ...], e.g. [["xray_train", "ann/train.json", "img/"]].
_C.DATASETS.COCO_INSTANCES = []

_C.DATALOADER = CN()
_C.DATALOADER.NUM_WORKERS = 2
# Batch landscape and portrait images apart, so padding to a common size wastes less.
_C.DATALOADER.ASPECT_RATIO_GROUPING = True
# Skip training images whose annotations are all gone (none, crowd only, or invalid).
_C.DATALOADER.FILTER_EMPTY_ANNOTATIONS = True

_C.TEST = CN()
_C.TEST.DETECTIONS_PER_IMAGE = 100  # read by build_roi_heads
# Read by the trainer: evaluate on DATASETS.TEST every this many iterations (0: only at the end).
_C.TEST.EVAL_PERIOD = 0
# "pycocotools", or "faster_coco_eval" (same numbers, faster).
_C.TEST.EVALUATOR_BACKEND = "pycocotools"
# Also report FROC (sensitivity at 1/8..8 false positives per image) and recall per image.
_C.TEST.FROC = False

# Read by build_optimizer and build_lr_scheduler (engine/solver.py).
_C.SOLVER = CN()
_C.SOLVER.IMS_PER_BATCH = 16  # the global batch, over all processes
_C.SOLVER.BASE_LR = 0.02
_C.SOLVER.MOMENTUM = 0.9
_C.SOLVER.WEIGHT_DECAY = 1e-4
# The GN paper's recipe: no weight decay on the norm layers' scale and shift.
_C.SOLVER.WEIGHT_DECAY_NORM = 0.0
_C.SOLVER.MAX_ITER = 90000
_C.SOLVER.STEPS = (60000, 80000)
_C.SOLVER.GAMMA = 0.1
_C.SOLVER.WARMUP_ITERS = 1000
_C.SOLVER.WARMUP_FACTOR = 1.0 / 1000

# Read by the trainer (engine/train_loop.py).
_C.SOLVER.CHECKPOINT_PERIOD = 5000
_C.SOLVER.LOG_PERIOD = 20
_C.SOLVER.CLIP_GRADIENTS = CN()
_C.SOLVER.CLIP_GRADIENTS.ENABLED = False
_C.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "value"  # "value": clamp each gradient; "norm": rescale all
_C.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 1.0
_C.SOLVER.CLIP_GRADIENTS.NORM_TYPE = 2.0
# Mixed precision: autocast the forward pass to DTYPE ("bfloat16" or "float16"; float16 on CUDA only,
# with loss scaling).
_C.SOLVER.AMP = CN()
_C.SOLVER.AMP.ENABLED = False
_C.SOLVER.AMP.DTYPE = "bfloat16"

_C.OUTPUT_DIR = "./output"
# Seeds every random choice of a run (data order, augmentation, sampling); negative: a fresh seed.
_C.SEED = -1
