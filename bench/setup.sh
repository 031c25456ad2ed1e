#!/usr/bin/env bash
# bench/setup.sh — install the peers bench/compare measures nncc against: PyTorch,
# TensorFlow (CPU) with tf-keras 2.15, ONNX Runtime (with onnx, which exports the
# bench models to ONNX through PyTorch), and NumPy. Idempotent: each is installed only
# if it cannot be imported already. Only bench/compare needs these; nncc's build, tests
# and CI do not, and do not run this script.
#
#   bash bench/setup.sh            # then: bench/compare
#
# PyTorch: the PyPI wheel (the default one pulls CUDA libraries, several GB; the CPU
# path is what is measured). If PyPI cannot be reached, Debian's python3-torch instead.
set -euo pipefail

PY=${PYTHON:-python3}
have() { "$PY" -c "import $1" >/dev/null 2>&1; }
pip_install() {
    local extra=()
    # Debian's own python3 is "externally managed" (PEP 668): allow pip there.
    [ "$PY" = /usr/bin/python3 ] && extra=(--break-system-packages)
    "$PY" -m pip install --quiet --disable-pip-version-check "${extra[@]}" "$@"
}

if ! have numpy; then
    echo "bench/setup.sh: installing numpy"
    pip_install "numpy<2"
fi

if ! have torch; then
    echo "bench/setup.sh: installing torch (PyPI; large download)"
    if ! pip_install torch; then
        echo "bench/setup.sh: pip failed; trying Debian's python3-torch"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch python3-numpy
        # Debian's package is for Debian's own python3; run the rest with it.
        PY=/usr/bin/python3
        echo "bench/setup.sh: torch is installed for $PY: run bench/compare with $PY"
    fi
fi

if ! have tensorflow; then
    echo "bench/setup.sh: installing tensorflow-cpu 2.15"
    pip_install "tensorflow-cpu==2.15.*"
fi

if ! have tf_keras; then
    echo "bench/setup.sh: installing tf-keras 2.15"
    pip_install "tf-keras==2.15.*"
fi

# ONNX Runtime, an inference-only peer, runs the bench models exported to ONNX by
# tests/onnx/make_fixtures.py (torch.onnx.export, which needs the onnx package).
# Both from PyPI (Debian 12 packages onnx 1.12 but not onnxruntime).
if ! have onnx; then
    echo "bench/setup.sh: installing onnx"
    pip_install onnx
fi

if ! have onnxruntime; then
    echo "bench/setup.sh: installing onnxruntime"
    pip_install onnxruntime
fi

"$PY" - <<'EOF'
import numpy, torch, tensorflow, tf_keras, onnx, onnxruntime
print(f"bench/setup.sh: numpy {numpy.__version__}, torch {torch.__version__}, "
      f"tensorflow {tensorflow.__version__}, tf_keras {tf_keras.__version__}, "
      f"onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__}")
EOF
