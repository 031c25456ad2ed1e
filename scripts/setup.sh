#!/usr/bin/env bash
# Installs what nncc needs to build, test and run its demo, from Debian 12's
# packages.  Safe to run again: it installs only what is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config   # the build
  clang libomp-dev libclang-rt-14-dev            # the JIT's compiler, OpenMP, sanitizers
  libcmocka-dev                                  # tests
  python3 python3-numpy                          # tests/interop (test_model_io_interop)
  zlib1g-dev libjansson-dev                      # gzip data sets, model files
  dataset-fashion-mnist                          # the real Fashion-MNIST
  protobuf-c-compiler libprotobuf-c-dev libonnx-dev  # ONNX: the generated parser, onnx.proto
  libonnx-testdata python3-onnx                  # ONNX's backend tests; its checker
  libhdf5-dev libzip-dev                         # Keras model files: .h5 (HDF5), .keras (zip)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all packages present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: run as root (or install sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
