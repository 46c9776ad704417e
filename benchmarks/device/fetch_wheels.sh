#!/usr/bin/env bash
# Download, here, the wheels that the bare GPU machine lacks into .whl/ (git-ignored), for benchmarks/device/run.sh.
#
# The device machine (python3 3.12, torch 2.11 cu130, torchvision, timm, click, matplotlib, scikit-image, tqdm,
# transformers, safetensors, einops, pygments, psutil, typing-extensions, pytest...) has no network. What
# cnn-probe and the peers of `python -m benchmarks --suite gpu` import beyond that:
#   captum                 cnn-probe's attribution (probe.attribute; tests/test_cuda.py calls it)
#   torch-lucent           the gallery row's peer (Lucent 0.1.8), which imports
#     kornia 0.4.1           its transforms (it pins kornia<=0.4.1: later ones moved warp_affine)
#     decorator              its objectives
#     ipython and its needs  lucent.misc.io.showing imports IPython.display
# All are pure-Python wheels; --no-deps: each dependency is named here, one version each.
# Usage: bash benchmarks/device/fetch_wheels.sh   (from the repository root; about 6 MiB)
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
WHEELS=(
  captum==0.9.0
  torch-lucent==0.1.8 kornia==0.4.1 decorator==5.2.1
  ipython==9.18.1 ipython-pygments-lexers==1.1.1 traitlets==5.16.1 jedi==0.20.1 parso==0.8.7
  prompt_toolkit==3.0.53 wcwidth==0.9.4 pexpect==4.9.0 ptyprocess==0.7.0 stack_data==0.6.3 executing==2.3.0
  asttokens==3.0.2 pure_eval==0.2.4 matplotlib-inline==0.2.2
)
mkdir -p .whl
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${WHEELS[@]}"
count=$(ls .whl/*.whl | wc -l)
[ "$count" -eq "${#WHEELS[@]}" ] || { echo "expected ${#WHEELS[@]} wheels in .whl/, found $count: remove stale ones" >&2; exit 1; }
du -sh .whl
