#!/usr/bin/env bash
# The CUDA checks, as one script for a GPU machine: the cuda-marked tests, trial packing's
# speed-up on the GPU (PACK_SEEDS seeds, one at a time against one pack), then the main suite
# with its CUDA trials running for real (QUICK=1: only the points its claims look at, then the
# claims checked), and that run's report. Everything it makes goes to $OUT (default
# /tmp/cuda-check): logs, and run.tar.gz with the run folder and its report.
#   SUITE=suites/activations.toml  WORKERS=12  RUN_LIMIT=360 (seconds; then stopped as Ctrl-C)
#   QUICK=0  TEST_LIMIT=300  PACK_SEEDS=16  PACK_EPOCHS=100 (PACK_SEEDS=0 skips packing)
set -uo pipefail
OUT=${OUT:-/tmp/cuda-check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda,
torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')"; } 2>&1 | tee "$OUT/gpu.txt"
timeout "${TEST_LIMIT:-300}" python3 -m pytest -m cuda -q -rs -p no:cacheprovider 2>&1 \
    | tee "$OUT/pytest_cuda.log"
if [ "${PACK_SEEDS:-16}" != 0 ]; then
    timeout "${PACK_LIMIT:-240}" python3 -m bench perf --pack --device cuda --seeds "${PACK_SEEDS:-16}" \
        --epochs "${PACK_EPOCHS:-100}" --repeats 2 2>&1 | tee "$OUT/pack_cuda.log"
fi
work=$(mktemp -d)
start=$(date +%s)
quick=(); [ "${QUICK:-0}" = 1 ] && quick=(--quick)
timeout -s INT "${RUN_LIMIT:-360}" python3 -m bench run "${SUITE:-suites/activations.toml}" "${quick[@]}" \
    --workers "${WORKERS:-12}" --out "$work/results" --reports "$work/reports" >"$OUT/run.log" 2>&1
echo "bench run: exit $? after $(( $(date +%s) - start )) s" | tee -a "$OUT/run.log"
tail -45 "$OUT/run.log"
tar -czf "$OUT/run.tar.gz" -C "$work" results reports
ls -la "$OUT"
