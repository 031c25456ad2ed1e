#!/usr/bin/env bash
# The main job: builds nncc and shows what it does today: the summaries of
# the seed models (compiled from their C files by `nncc summary`), the IR of
# one, inference with generated code on the real Fashion-MNIST test set, two
# epochs of training the Fashion-MNIST CNN, and a PyTorch model imported from
# ONNX: summarized, compiled into a program, and fine-tuned.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
for f in examples/seed_sequential.c examples/seed_functional.c examples/seed_cnn.c \
         examples/inception_block.c; do
  echo "\$ nncc summary $f"
  build/nncc summary "$f"
  echo
done
echo "\$ nncc graph examples/seed_cnn.c --ir"
build/nncc graph examples/seed_cnn.c --ir
echo
echo "\$ nncc run examples/predict_fashion.c   # inference on the 10,000 Fashion-MNIST test images"
build/nncc run examples/predict_fashion.c
echo
echo "\$ nncc run examples/fashion_mnist_cnn.c --epochs 2   # train the CNN (10 epochs reach ~0.906)"
build/nncc run examples/fashion_mnist_cnn.c --epochs 2
echo
echo "\$ nncc summary tests/onnx/fixtures/resnet.onnx   # a PyTorch ResNet-style model, from ONNX"
build/nncc summary tests/onnx/fixtures/resnet.onnx
echo
echo "\$ nncc compile tests/onnx/fixtures/convnet.onnx -o build/convnet_onnx && build/convnet_onnx --input tests/onnx/fixtures/convnet.input.npy"
build/nncc compile tests/onnx/fixtures/convnet.onnx -o build/convnet_onnx
build/convnet_onnx --input tests/onnx/fixtures/convnet.input.npy
echo
echo "\$ nncc run examples/onnx_finetune.c --epochs 1   # the imported PyTorch convnet trained by nncc_fit"
build/nncc run examples/onnx_finetune.c --epochs 1
echo
echo "\$ nncc run examples/keras_continue.c --save build/fmnist_cnn.keras   # a Keras 3 model trained on by nncc, saved for Keras"
build/nncc run examples/keras_continue.c --save build/fmnist_cnn.keras
echo
echo "\$ nncc compile build/fmnist_cnn.keras -o build/classify_keras && build/classify_keras --input .../t10k-images-idx3-ubyte.gz --labels .../t10k-labels-idx1-ubyte.gz"
build/nncc compile build/fmnist_cnn.keras -o build/classify_keras
build/classify_keras --input /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz \
  --labels /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz >/dev/null
