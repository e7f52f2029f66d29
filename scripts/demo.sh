#!/usr/bin/env bash
# Set up (scripts/setup.sh), then run mcuflow's main job end to end on an emulated Cortex-M4:
# the bundled paper model (or a freshly trained one with --train), int8 export to C, firmware
# build, a host-in-the-loop session under QEMU, and an HTML report.
#
#   ./scripts/demo.sh                      bundled model, bundled 500 MNIST test images
#   ./scripts/demo.sh --train              train first (needs MNIST: --data-dir DIR or $MCUFLOW_DATA_DIR)
#   ./scripts/demo.sh --data-dir DIR       use the full MNIST test set from DIR
#   BOARD=qemu-netduinoplus2 ./scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

TRAIN=0
DATA_ARGS=()
while (($#)); do
  case "$1" in
    --train) TRAIN=1 ;;
    --data-dir) DATA_ARGS=(--data-dir "$2"); export MCUFLOW_DATA_DIR="$2"; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "demo: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

./scripts/setup.sh
MCUFLOW=.venv/bin/mcuflow
OUT=${OUT:-out/demo}
BOARD=${BOARD:-qemu-mps2-an386}
CKPT=examples/paper_sparse.pt
mkdir -p "$OUT"

if ((TRAIN)); then
  if [ -z "${MCUFLOW_DATA_DIR:-}" ]; then
    echo "demo: --train needs MNIST: pass --data-dir DIR (the four IDX files) or set MCUFLOW_DATA_DIR" >&2
    exit 2
  fi
  "$MCUFLOW" train --epochs 20 --out "$OUT/model.pt" --metrics-json "$OUT/train.json"
  CKPT=$OUT/model.pt
fi

"$MCUFLOW" hil "$CKPT" --board "$BOARD" "${DATA_ARGS[@]}" --workdir "$OUT/work" \
  --json "$OUT/hil.json" --report "$OUT/report.html"
echo
echo "demo: export in $OUT/work/export (C library + export.json), firmware in $OUT/work/export/build/$BOARD"
echo "demo: open $OUT/report.html for the report"
