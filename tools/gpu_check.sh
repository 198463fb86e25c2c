#!/usr/bin/env bash
# The GPU check: training and inference images/s and peak memory of GN R-50-FPN Mask R-CNN at
# 800x1333 with 2 images, in fp32 and bf16, beside its FrozenBN twin (same 4conv1fc and mask
# heads, no norm outside the backbone) and detectron2's model in fp32 (torchvision's where
# detectron2 is not installed), all interleaved in one process. Writes $OUT/gpu_check.json,
# which names the GPU, with the GN/FrozenBN cost ratios and the speed-up over the reference.
# About 3 minutes on an H100/H200.
#
#   tools/gpu_check.sh                      # from the repository root
#   OUT=/tmp/check ITERS=20 tools/gpu_check.sh
#
# Settings (environment): OUT (output/gpu_check), DEVICE (cuda), SIZE ("800 1333"), BATCH (2),
# ITERS (10), WARMUP (3), PRECISIONS ("fp32 bf16"), GN_CONFIG, FROZEN_BN_CONFIG, REFERENCE
# (detectron2 if importable, else torchvision; "none" for none), COMPILE (0; 1 compiles the
# backbones), EXTRA_OPTS (config overrides for our models, e.g. "MODEL.CHANNELS_LAST False"),
# PYTHON (python3). The package runs from this checkout: where fvcore, iopath or
# pycocotools are missing, put their wheels in WHEELS (.whl) and they are installed first.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-output/gpu_check}
DEVICE=${DEVICE:-cuda}
SIZE=${SIZE:-800 1333}
BATCH=${BATCH:-2}
ITERS=${ITERS:-10}
WARMUP=${WARMUP:-3}
PRECISIONS=${PRECISIONS:-fp32 bf16}
GN_CONFIG=${GN_CONFIG:-configs/COCO-GN/mask_rcnn_R_50_FPN_3x_gn.yaml}
FROZEN_BN_CONFIG=${FROZEN_BN_CONFIG:-configs/COCO-GN/mask_rcnn_R_50_FPN_2x_bnstar_4conv1fc.yaml}
COMPILE=${COMPILE:-0}
PYTHON=${PYTHON:-python3}
WHEELS=${WHEELS:-.whl}

if ! "$PYTHON" -c "import fvcore, iopath, pycocotools" 2>/dev/null && [ -d "$WHEELS" ]; then
    "$PYTHON" -m pip install -q --no-index --no-deps --target /tmp/gn_check_site "$WHEELS"/*.whl
    export PYTHONPATH=/tmp/gn_check_site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if [ "$DEVICE" = cuda ] && ! "$PYTHON" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    echo "gpu_check: no CUDA device visible to $PYTHON's torch" >&2
    exit 2
fi
if [ -z "${REFERENCE:-}" ]; then
    REFERENCE=$("$PYTHON" -c "import detectron2" 2>/dev/null && echo detectron2 || echo torchvision)
fi
VS=("$FROZEN_BN_CONFIG")
[ "$REFERENCE" != none ] && VS+=("$REFERENCE")
COMPILE_OPTS=()
[ "$COMPILE" = 1 ] && COMPILE_OPTS=(MODEL.COMPILE_BACKBONE True)

mkdir -p "$OUT"
# shellcheck disable=SC2086  # SIZE, PRECISIONS and EXTRA_OPTS are lists
"$PYTHON" -m gn_detection.cli benchmark --config-file "$GN_CONFIG" --vs "${VS[@]}" \
    --size $SIZE --batch "$BATCH" --iters "$ITERS" --warmup "$WARMUP" --precision $PRECISIONS \
    --json "$OUT/benchmark.json" MODEL.DEVICE "$DEVICE" ${COMPILE_OPTS[@]+"${COMPILE_OPTS[@]}"} ${EXTRA_OPTS:-}

"$PYTHON" - "$OUT" "$GN_CONFIG" "$FROZEN_BN_CONFIG" "$REFERENCE" <<'EOF'
import json, os, sys

out, gn, frozen_bn, reference = sys.argv[1:]
report = json.load(open(os.path.join(out, "benchmark.json")))
results = report["results"]

def find(name, precision):
    return next((r for n, r in results.items() if n.startswith(name) and r["precision"] == precision), None)

summary = {"gn_over_frozen_bn": {}, "gn_speedup_over_reference_fp32": {}}
for precision in report["precisions"]:
    ours, twin = find(gn, precision), find(frozen_bn, precision)
    summary["gn_over_frozen_bn"][precision] = dict(
        train_step=ours["train_step_s"] / twin["train_step_s"],
        inference=ours["inference_s_per_image"] / twin["inference_s_per_image"],
        memory=ours["train_step_memory_mb"] / twin["train_step_memory_mb"],
    )
    base = find(reference, "fp32")
    if base:
        summary["gn_speedup_over_reference_fp32"][precision] = dict(
            train_images_per_s=ours["train_images_per_s"] / base["train_images_per_s"],
            inference_images_per_s=ours["inference_images_per_s"] / base["inference_images_per_s"],
        )
report.update(reference=reference, summary=summary)
with open(os.path.join(out, "gpu_check.json"), "w") as f:
    json.dump(report, f, indent=1)
print(f"{report['gpu'] or report['cpu']}: " + json.dumps(summary, indent=1))
print("wrote", os.path.join(out, "gpu_check.json"))
EOF
