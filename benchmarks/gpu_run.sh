#!/usr/bin/env bash
# The GPU checks and speed tables in one command (a lent GPU machine runs it in one call):
#   bash benchmarks/gpu_run.sh            # logs and JSON under $OUT (default runs/gpu)
# Wheels under .whl/ (packages the machine lacks, e.g. pycocotools) are installed first.
set -u
OUT=${OUT:-runs/gpu}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=src:${PYTHONPATH:-} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TORCHINDUCTOR_COMPILE_THREADS=${TORCHINDUCTOR_COMPILE_THREADS:-16}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch, torchvision, timm; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'timm', timm.__version__)" | tee -a "$OUT/gpu.txt"
step() {  # name, seconds, script and arguments
    local name=$1 limit=$2; shift 2
    local t0=$SECONDS
    timeout "$limit" python3 "$@" > "$OUT/$name.log" 2>&1
    echo "== $name: rc=$? in $((SECONDS - t0)) s" | tee -a "$OUT/gpu.txt"
}
step check 150 benchmarks/gpu_check.py
step overhead 70 benchmarks/overhead.py --device cuda --repeats 20 --json "$OUT/overhead.json"
step detector 60 benchmarks/detector_speed.py --swin-t --device cuda --dtypes fp32 bf16 --frames 30
step tracker 140 benchmarks/tracker_speed.py --models vit_base_patch16_224 --device cuda --dtypes fp32 bf16 --backends eager compiled --rounds 3
step detector_compiled 160 benchmarks/detector_speed.py --swin-t --device cuda --dtypes bf16 fp32 --backends compiled --modes causal --frames 30
for f in check overhead detector tracker detector_compiled; do echo "== $f"; grep -v "^\(fp32\|bf16\|vit_base\)" "$OUT/$f.log" | tail -n 40; done
