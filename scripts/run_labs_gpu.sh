#!/usr/bin/env bash
# Run every lab at full size on a CUDA machine with papermill, and keep what it produced.
#
#   bash scripts/run_labs_gpu.sh [OUT_DIR]        (or: make labs-gpu)
#
# Writes to OUT_DIR (default _build/labs-gpu/): the executed notebooks, figures/ with every
# figure, timings.txt (wall time of each notebook, the Demo & Results grid's own time, the GPU's
# name) and train_speed.txt (benchmarks/train_speed.py on the GPU). Full size means the lecture's
# setting: FashionMNIST (60,000 training images), 10 epochs, the device cuda. FashionMNIST must be
# downloadable or already under $LABKIT_DATA_ROOT/FashionMNIST/raw/ (see labs/README.md).
# Override with the environment: DATASET=mnist EPOCHS=5 DEVICE=cuda:1 PRECISION=bf16 BENCH=0.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT="$(realpath -m "${1:-_build/labs-gpu}")"
DATASET="${DATASET:-fashion-mnist}"
EPOCHS="${EPOCHS:-10}"
DEVICE="${DEVICE:-cuda}"
PRECISION="${PRECISION:-fp32}"
BENCH="${BENCH:-1}"
PY="${PYTHON:-.venv/bin/python}"
export PYTHONUNBUFFERED=1

mkdir -p "$OUT/figures"
: > "$OUT/timings.txt"
{
  echo "# $(date -u +%FT%TZ)  dataset=$DATASET epochs=$EPOCHS device=$DEVICE precision=$PRECISION"
  "$PY" -c "import torch; print('torch', torch.__version__, '|', torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA device')"
} | tee -a "$OUT/timings.txt"

run_lab() {  # run_lab NAME [papermill -p arguments...]
  local name=$1; shift
  local start end
  start=$(date +%s%N)
  "$PY" -m papermill -k python3 --cwd labs --log-output "labs/$name.ipynb" "$OUT/$name.ipynb" \
    -p device "$DEVICE" -p dataset "$DATASET" -p epochs "$EPOCHS" \
    -p figure_dir "$OUT/figures" "$@"
  end=$(date +%s%N)
  printf '%-16s %6d.%d s (whole notebook: kernel start and data loading included)\n' \
    "$name" $(( (end - start) / 1000000000 )) $(( (end - start) / 100000000 % 10 )) \
    | tee -a "$OUT/timings.txt"
}

run_lab first_training
run_lab demo_results -p precision "$PRECISION" -p vectorize True

# The grid's own time, as the notebook printed it (training only, data already on the GPU).
"$PY" - "$OUT/demo_results.ipynb" <<'PYEOF' | tee -a "$OUT/timings.txt"
import sys, nbformat
nb = nbformat.read(sys.argv[1], as_version=4)
for cell in nb.cells:
    for out in cell.get("outputs", []):
        text = out.get("text", "")
        if "whole grid" in text:
            print("demo_results grid:\n" + text.rstrip())
PYEOF

if [ "$BENCH" = "1" ]; then
  "$PY" benchmarks/train_speed.py --device "$DEVICE" --repeats 3 | tee "$OUT/train_speed.txt"
  "$PY" benchmarks/lecture_grid.py --device "$DEVICE" --precision "$PRECISION" --out "$OUT/lecture_grid.json" | tee "$OUT/lecture_grid.txt"
fi
echo "executed notebooks, figures and timings in $OUT"
