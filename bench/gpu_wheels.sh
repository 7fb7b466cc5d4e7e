#!/usr/bin/env bash
# Fill .whl/ with the Python 3.12 wheels that the lent GPU machine's image lacks (it has torch,
# transformers, accelerate, peft, pillow, numpy, opencv, scikit-image, click, pluggy, pytest...,
# and cannot download anything). Run here, before bench/gpu_check.sh travels with `carry: .whl`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rm -rf .whl && mkdir .whl
# The versions this project is tested with (README "Tested versions"), and what they need that
# the image does not have.
wanted=(
    diffusers==0.42.1 importlib-metadata
    pyexiv2==2.16.0 rawpy==0.28.0 piexif==1.1.3 pillow-heif==1.8.1 pypng==0.20220715.0
    sqlite-utils==4.2.1 sqlite-fts4 click-default-group
    watchdog==7.1.1 platformdirs tomli-w torchsde==0.2.6 trampoline gguf==0.19.0
)
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
         manylinux1_x86_64 manylinux_2_24_x86_64 manylinux_2_31_x86_64 manylinux_2_34_x86_64 any; do
    platforms+=(--platform "$p")
done
# --bnb: bitsandbytes too (43 MB; the carry limit is 64 MiB), for the nf4 folder test.
if [[ "${1:-}" == "--bnb" ]]; then wanted+=(bitsandbytes==0.50.2); fi
for want in "${wanted[@]}"; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp "${platforms[@]}" -d .whl "$want"
done
ls -la .whl
du -sh .whl
