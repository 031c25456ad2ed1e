#!/usr/bin/env python3
"""Writes tests/onnx/fixtures/: small ONNX models exported from PyTorch, with inputs
and PyTorch's outputs, for the tests of nncc's ONNX importer (issue #14).

Run from anywhere, with a Python that has torch, onnx, onnxruntime and numpy
(pip install torch onnx onnxruntime numpy; `python3 -c "import torch"` must work):

    python3 tests/onnx/make_fixtures.py            # all models
    python3 tests/onnx/make_fixtures.py resnet     # some of them
    python3 tests/onnx/make_fixtures.py --out DIR mlp   # elsewhere (bench/compare)

For each model NAME it writes tests/onnx/fixtures/NAME.onnx (torch.onnx.export, the
TorchScript-based exporter, dynamo=False, opset 13, the batch axis dynamic, named
"N"; input "input", output "output"), NAME.input.npy (float32, a batch of 3; images
NCHW as PyTorch takes them) and NAME.output.npy (float32, PyTorch's output on that
batch, in eval mode). `external` is saved with its weights in NAME.data beside it
(ONNX external data, one file). Every model is then run with ONNX Runtime on the same
input and must agree with PyTorch within 1e-5 (the maximum absolute difference is
printed), and passes onnx.checker with full shape inference. Everything is seeded:
running it twice writes the same bytes. Nothing in CI runs this script; the fixtures
are committed (tests/onnx/README.md says what each one holds).
"""
import os

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures")
OPSET = 13          # Debian 12's onnx 1.12 (the importer's target) reads opsets <= 17
BATCH = 3
TOL = 1e-5

# --------------------------------------------------------------------------- models


def seed_mlp():
    """bench/models/seed_mlp.c: Input 32, Dense 16 relu, Dense 8 softmax."""
    return nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 8), nn.Softmax(dim=1))


def mlp():
    """bench/models/mlp.c: Input 28x28x1, Flatten, Dense 128 relu, Dense 10 softmax."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10),
                         nn.Softmax(dim=1))


def seed_cnn():
    """bench/models/seed_cnn.c: Conv2D 16 3x3 strides 2 "same" relu, MaxPooling2D 2x2,
    Flatten, Dense 10 softmax. Keras' "same" at stride 2 on 28x28 pads 0 before and 1
    after; PyTorch's Conv2d cannot say that, so the model pads with ZeroPad2d, and the
    file gets one Conv with pads [0, 0, 1, 1], exactly Keras' "same"
    (keras_same_pads)."""
    return nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(1, 16, 3, stride=2), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 7 * 7, 10),
                         nn.Softmax(dim=1))


def convnet():
    """bench/models/convnet.c: Conv2D 32 3x3 relu, MaxPooling2D, Conv2D 64 3x3 relu,
    MaxPooling2D, Flatten, Dense 10 softmax. Flatten is NCHW (PyTorch's order), so the
    Dense weight rows are in channel-major order: the importer must follow ONNX's."""
    return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(64 * 5 * 5, 10), nn.Softmax(dim=1))


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut (identity, or a strided 1x1 conv +
    BN when the shape changes), then ReLU: torchvision's BasicBlock."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x):
        h = self.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        s = x if self.shortcut is None else self.shortcut(x)
        return self.relu(h + s)


class ResNet(nn.Module):
    """A small ResNet on (N, 3, 16, 16): stem conv3x3(8)-BN-ReLU; a block 8->8
    (identity shortcut); a block 8->16 at stride 2 (1x1 stride-2 projection + BN);
    global average pooling; Linear 16->10 (logits)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(8), nn.ReLU())
        self.block1 = BasicBlock(8, 8, 1)
        self.block2 = BasicBlock(8, 16, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        h = self.block2(self.block1(self.stem(x)))
        return self.fc(torch.flatten(self.pool(h), 1))


def resnet():
    m = ResNet()
    # Non-trivial batch normalization: random affine parameters, and running
    # statistics from a few training-mode passes on shifted, scaled random data (so
    # the running means are far from 0 and the variances from 1).
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.weight.copy_(0.5 + torch.rand(mod.num_features, generator=g))
                mod.bias.copy_(0.2 * torch.randn(mod.num_features, generator=g))
        m.train()
        for _ in range(30):   # momentum 0.1: 0.9**30 = 4 % of the initial (0, 1) left
            m(2.0 * torch.randn(8, 3, 16, 16, generator=g) + 0.5)
    return m


class Options(nn.Module):
    """Operator options an importer must honour, on (N, 3, 10, 10):
    Conv 3->6 3x3 pad 1, LeakyReLU(0.1); depthwise Conv 6->6 3x3 (group 6) pad 1,
    Sigmoid; ConvTranspose 6->4 3x3 stride 2 pad 1 (10 -> 19); AvgPool 3x3 stride 2
    pad 1 count_include_pad=False (19 -> 10, the border windows divide by fewer
    cells); MaxPool 3x3 stride 2 ceil_mode=True (10 -> 5, floor would give 4);
    Flatten (100); Linear 100->16 (Gemm transB=1); LeakyReLU(0.2); then
    torch.addmm(bias, h, W, beta=0.5, alpha=2.0) with W stored (16, 5) (a Gemm with
    alpha, beta and no transB), the output."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.act1 = nn.LeakyReLU(0.1)
        self.dw = nn.Conv2d(6, 6, 3, padding=1, groups=6)
        self.up = nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1)
        self.avg = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        self.max = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.fc = nn.Linear(100, 16)
        self.act2 = nn.LeakyReLU(0.2)
        self.w = nn.Parameter(torch.randn(16, 5))
        self.b = nn.Parameter(torch.randn(5))

    def forward(self, x):
        h = self.act1(self.conv(x))
        h = torch.sigmoid(self.dw(h))
        h = self.max(self.avg(self.up(h)))
        h = self.act2(self.fc(torch.flatten(h, 1)))
        return torch.addmm(self.b, h, self.w, beta=0.5, alpha=2.0)


def options():
    return Options()


def external():
    """A tiny MLP (Input 4, Dense 6 tanh, Dense 3) saved with all its initializers in
    external.data (the importer's external data path)."""
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))


# name -> (builder, input shape without the batch, input kind, seed)
MODELS = {
    "seed_mlp": (seed_mlp, (32,), "uniform", 10),
    "mlp": (mlp, (1, 28, 28), "uniform", 11),
    "seed_cnn": (seed_cnn, (1, 28, 28), "uniform", 12),
    "convnet": (convnet, (1, 28, 28), "uniform", 13),
    "resnet": (resnet, (3, 16, 16), "normal", 14),
    "options": (options, (3, 10, 10), "normal", 15),
    "external": (external, (4,), "normal", 16),
}

# --------------------------------------------------------------------------- export


def export(net, x, training=torch.onnx.TrainingMode.EVAL):
    """The model as an onnx.ModelProto (exported in memory)."""
    import io
    import warnings
    f = io.BytesIO()
    with warnings.catch_warnings():
        # The legacy exporter is deprecated; dynamo=False is asked for on purpose.
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), f, dynamo=False, opset_version=OPSET,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "N"}, "output": {0: "N"}},
                          training=training, do_constant_folding=True)
    return onnx.load_from_string(f.getvalue())


def keras_same_pads(net, x):
    """seed_cnn exported with Keras' "same" padding in its Conv. net[0] is the
    ZeroPad2d; the rest is traced on the padded input (N, 1, 29, 29), then the Conv's
    pads become [0, 0, 1, 1] and the input is declared (N, 1, 28, 28) again: one Conv,
    no Pad (whose pads the exporter computes through a dozen shape ops)."""
    pad, rest = net[0], net[1:]
    model = export(rest, pad(x))
    g = model.graph
    conv = g.node[0]
    assert conv.op_type == "Conv" and conv.input[0] == "input"
    attr = next(a for a in conv.attribute if a.name == "pads")
    assert list(attr.ints) == [0, 0, 0, 0]
    l, r, t, b = pad.padding
    attr.ints[:] = [t, l, b, r]   # ONNX: H begin, W begin, H end, W end
    dims = g.input[0].type.tensor_type.shape.dim
    dims[2].dim_value, dims[3].dim_value = x.shape[2], x.shape[3]
    del g.value_info[:]
    # Shape inference must accept the patched graph (and reach (N, 10)); its
    # value_info is not kept, like the other files.
    inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    out = [d.dim_param or d.dim_value
           for d in inferred.graph.output[0].type.tensor_type.shape.dim]
    assert out == ["N", 10], out
    return model


def make(name, out=OUT):
    build, shape, kind, seed = MODELS[name]
    torch.manual_seed(seed)
    net = build().eval()
    rng = np.random.RandomState(seed)
    if kind == "uniform":   # image-like, in [0, 1)
        x = rng.random_sample((BATCH,) + shape).astype(np.float32)
    else:
        x = rng.standard_normal((BATCH,) + shape).astype(np.float32)
    with torch.no_grad():
        y = net(torch.from_numpy(x)).numpy().astype(np.float32)

    # Batch normalization kept as BatchNormalization nodes (TrainingMode.EVAL would
    # fold it into the convolutions); the model is in eval mode, so they are
    # inference-mode nodes with the running statistics.
    training = (torch.onnx.TrainingMode.PRESERVE if name == "resnet"
                else torch.onnx.TrainingMode.EVAL)
    if name == "seed_cnn":
        model = keras_same_pads(net, torch.from_numpy(x))
    else:
        model = export(net, torch.from_numpy(x), training)
    onnx.checker.check_model(model, full_check=True)

    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, name + ".onnx")
    if name == "external":
        data = os.path.join(out, name + ".data")
        if os.path.exists(data):
            os.remove(data)  # onnx appends to an existing data file
        onnx.save_model(model, path, save_as_external_data=True,
                        all_tensors_to_one_file=True, location=name + ".data",
                        size_threshold=0)
        assert all(t.data_location == onnx.TensorProto.EXTERNAL
                   for t in onnx.load(path, load_external_data=False).graph.initializer)
    else:
        onnx.save_model(model, path)
    np.save(os.path.join(out, name + ".input.npy"), x)
    np.save(os.path.join(out, name + ".output.npy"), y)

    # ONNX Runtime on the file as written (external data read from beside it).
    onnx.checker.check_model(path, full_check=True)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    (got,) = sess.run(["output"], {"input": x})
    diff = float(np.max(np.abs(got - y)))
    (one,) = sess.run(["output"], {"input": x[1:2]})  # the batch axis is dynamic
    diff = max(diff, float(np.max(np.abs(one - y[1:2]))))
    ops = sorted({n.op_type for n in onnx.load(path).graph.node})
    print(f"{name:9s} in {x.shape} out {y.shape}  ORT vs PyTorch max |diff| {diff:.3g}"
          f"  ops: {' '.join(ops)}")
    assert got.shape == y.shape and diff <= TOL, f"{name}: ORT differs from PyTorch by {diff}"


def main():
    import argparse
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="models to write (default all): " + ", ".join(MODELS))
    p.add_argument("--out", default=OUT,
                   help="folder to write into (default tests/onnx/fixtures; bench/compare"
                        " writes the bench models into bench/out/onnx)")
    args = p.parse_args()
    bad = [n for n in args.names if n not in MODELS]
    if bad:
        p.error(f"unknown model(s): {', '.join(bad)}; choose from {', '.join(MODELS)}")
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    for name in args.names or list(MODELS):
        make(name, args.out)


if __name__ == "__main__":
    main()
