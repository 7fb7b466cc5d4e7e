#!/usr/bin/env bash
# Everything that needs a GPU, as one run on a lent GPU machine (it starts bare, reaches
# nothing outside, and a session has 15 minutes of it): the CUDA tests, then the runner
# benchmark with SD 1.5's architecture (random weights) with batching on and off, then the
# detail transfer on the GPU. Each step's output lands in $OUT as it goes, so a run cut short
# still brings back what it did.
#
# Here, first:   bash bench/gpu_wheels.sh          (the wheels that machine's image lacks;
#                 --bnb adds bitsandbytes for the nf4-folder test, 43 MB more)
# Then, through the device tool (the steps' time limits add up to about 560 s):
#   run(command="bash bench/gpu_check.sh 2>&1 | tee $OUT/all.log", carry=[".whl"], timeout_s=590)
# Record what comes back in bench/RESULTS.md (device, date, each number).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
START=$SECONDS
step() { printf '\n=== %s (at %d s)\n' "$*" "$((SECONDS - START))"; }

step "install the carried wheels"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
# photobatch itself from the working tree that travelled (the code under test, not a wheel
# built earlier): its packages are the top-level folders, mapped as pyproject.toml maps them.
mkdir -p /tmp/pbsrc/photobatch
for pkg in daemon catalog recipes plugins; do ln -sfn "$PWD/$pkg" "/tmp/pbsrc/photobatch/$pkg"; done
export PYTHONPATH=/tmp/pbsrc:/tmp/site
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/device.txt"
python3 - <<'PY' 2>&1 | tee -a "$OUT/device.txt"
import diffusers, torch, transformers
import photobatch.plugins.diffusion.runner  # noqa: F401  (the package imports from the tree)
print("torch", torch.__version__, "cuda", torch.version.cuda, "diffusers", diffusers.__version__,
      "transformers", transformers.__version__, "gpu", torch.cuda.get_device_name(),
      "bf16", torch.cuda.is_bf16_supported())
PY

step "CUDA tests"
# One process, one GPU: the project's `-n 2` (pytest-xdist, maybe not on that image) is left out.
timeout 200 python3 -m pytest -p no:cacheprovider -o addopts="--import-mode=importlib" \
    -m cuda tests/test_cuda.py -s -q -ra \
    --basetemp=/tmp/pb-cuda 2>&1 | tee "$OUT/cuda_tests.log"

step "SD 1.5 architecture, random weights"
timeout 100 python3 bench/random_sd15.py /tmp/random-sd15 2>&1 | tail -3

step "runner benchmark, batching on (4 photos a call)"
timeout 130 python3 bench/runner.py --model /tmp/random-sd15 --batch 4 --repeats 2 2>&1 \
    | grep -v "requires torchvision" | tee "$OUT/bench_batch4.log"

step "runner benchmark, batching off"
timeout 70 python3 bench/runner.py --model /tmp/random-sd15 --batch 1 --repeats 1 2>&1 \
    | grep -v "requires torchvision" | tee "$OUT/bench_batch1.log"

step "detail transfer on the GPU"
timeout 40 python3 bench/fullres.py --device cuda 2>&1 | tee "$OUT/fullres.log"

step "done"
