"""One measurement of one peer framework on one model, in a fresh process.

bench/compare runs this file once per (peer, model, thread count, round):

    python3 bench/peer_worker.py --peer torch-eager|torch-compile|keras|onnxruntime \
        --model seed_mlp|mlp|seed_cnn|convnet --threads N [--quick] [--onnx FILE]

and reads the one JSON object it prints as its last line. A fresh process per
run is needed because TensorFlow fixes its thread pools at start-up, and it also
makes every warm-up (torch.compile's Inductor, Keras' tracing) a cold one.

What is measured (all on real Fashion-MNIST, see load_data):
  warmup_train_s   wall time of the first training step (torch.compile: tracing +
                   Inductor compile of forward/backward and of the Adam step;
                   Keras: the first model.fit call on one batch, i.e. tracing)
  warmup_infer_s   wall time of the first inference call at batch 256 and of the
                   first one at batch 1 (each its own graph for torch.compile)
  warmup_s         the two above summed: what stands for nncc's compile time
  train_samples_per_s
                   steady state, batch 64: passes over the timing set (forward,
                   loss, backward, Adam update per batch), median pass
  infer_samples_per_s
                   batch 256, median pass over the timing set (full batches only)
  latency_b1_us    median of many single-sample forward calls

onnxruntime is an inference-only peer: it runs the model's ONNX file (--onnx,
default bench/out/onnx/MODEL.onnx, which bench/compare writes with
tests/onnx/make_fixtures.py --out bench/out/onnx: the same architectures exported
from PyTorch, opset 13, batch axis dynamic, softmax included) in an
InferenceSession with intra_op_num_threads = N (inter-op 1, sequential execution,
all graph optimizations: ONNX Runtime's defaults otherwise). Its warm-up is the
session's creation (loading and optimizing the graph: what stands for a compile)
plus the first calls at batch 256 and 1; it has no training figures.
"""

import argparse
import gzip
import json
import os
import statistics
import struct
import sys
import time

import numpy as np

DATA_DIR = "/usr/share/datasets/fashion-mnist"
TRAIN_BATCH = 64
INFER_BATCH = 256

# Keras' Adam defaults, as nncc_adam() uses them.
LR, BETA1, BETA2, EPS = 1e-3, 0.9, 0.999, 1e-7


def read_idx(path):
    """An IDX file (gzip) as a NumPy array of its declared shape."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_data(model, n):
    """The first n Fashion-MNIST training images, as the model takes them.

    Images are scaled to [0, 1] and kept NHWC (n, 28, 28, 1); labels one-hot.
    seed_mlp takes 32 inputs and has 8 classes: it gets the first 32 pixels of
    each image and the label modulo 8 (the data only has to be real and of the
    right shape; its speed does not depend on what the numbers mean).
    """
    images = read_idx(os.path.join(DATA_DIR, "train-images-idx3-ubyte.gz"))[:n]
    labels = read_idx(os.path.join(DATA_DIR, "train-labels-idx1-ubyte.gz"))[:n]
    x = images.astype(np.float32) / 255.0
    if model == "seed_mlp":
        x = x.reshape(n, -1)[:, :32].copy()
        labels = labels % 8
        classes = 8
    else:
        x = x.reshape(n, 28, 28, 1)
        classes = 10
    y = np.eye(classes, dtype=np.float32)[labels]
    return x, labels.astype(np.int64), y


def median_rate(samples, timed_fn, passes):
    """Median samples/s over `passes` timed calls of timed_fn (each one pass)."""
    rates = []
    for _ in range(passes):
        t0 = time.perf_counter()
        timed_fn()
        rates.append(samples / (time.perf_counter() - t0))
    return statistics.median(rates)


def median_latency_us(call, n):
    """Median wall time of n calls of call(), in microseconds."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        call()
        times.append((time.perf_counter_ns() - t0) / 1000.0)
    return statistics.median(times)


# --------------------------------------------------------------------------- PyTorch

def torch_model(model):
    """The model as torch.nn layers (NCHW), ending in logits (softmax in the loss)."""
    import torch.nn as nn

    if model == "seed_mlp":
        return nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 8))
    if model == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    if model == "seed_cnn":
        # Keras' "same" padding at stride 2 on 28x28 pads 0 before and 1 after; the
        # output is 14x14 either way and the cost is the same as padding=1.
        return nn.Sequential(nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),
                             nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 7 * 7, 10))
    if model == "convnet":
        return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(64 * 5 * 5, 10))
    raise ValueError(model)


def run_torch(args, compiled):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x_np, labels_np, _ = load_data(args.model, args.samples)
    if x_np.ndim == 4:
        x_np = x_np.transpose(0, 3, 1, 2).copy()  # NHWC -> NCHW
    x_all = torch.from_numpy(x_np)
    y_all = torch.from_numpy(labels_np)
    train_batches = [(x_all[i:i + TRAIN_BATCH], y_all[i:i + TRAIN_BATCH])
                     for i in range(0, args.samples, TRAIN_BATCH)]
    infer_batches = [x_all[i:i + INFER_BATCH]
                     for i in range(0, args.samples - INFER_BATCH + 1, INFER_BATCH)]
    infer_samples = INFER_BATCH * len(infer_batches)

    net = torch_model(args.model)
    opt = torch.optim.Adam(net.parameters(), lr=LR, betas=(BETA1, BETA2), eps=EPS)

    def loss_of(x, y):
        # Categorical cross-entropy on softmax outputs, computed through the logits
        # (the stable path Keras and nncc take). Integer targets: same arithmetic as
        # one-hot targets for this loss, and PyTorch's usual form.
        return F.cross_entropy(net(x), y)

    def predict(x):
        return torch.softmax(net(x), dim=1)

    opt_step = opt.step
    if compiled:
        # Default mode (Inductor). dynamic=False: one static graph per batch size
        # (64, 256, 1) rather than a dynamic-shape graph after the second size.
        loss_of = torch.compile(loss_of, dynamic=False)
        predict = torch.compile(predict, dynamic=False)
        opt_step = torch.compile(opt.step, dynamic=False)

    def train_step(x, y):
        opt.zero_grad(set_to_none=True)
        loss = loss_of(x, y)
        loss.backward()
        opt_step()
        return loss

    # Warm-up timed as the "compile" figure: first training step, first inference
    # calls at batch 256 and batch 1.
    t0 = time.perf_counter()
    train_step(*train_batches[0])
    warmup_train = time.perf_counter() - t0
    with torch.inference_mode():
        t0 = time.perf_counter()
        predict(infer_batches[0])
        predict(x_all[:1])
        warmup_infer = time.perf_counter() - t0

    def train_pass():
        for x, y in train_batches:
            train_step(x, y)

    train_pass()  # steady state: allocator, caches, Adam slots warm
    train_rate = median_rate(args.samples, train_pass, args.passes)

    with torch.inference_mode():
        def infer_pass():
            for x in infer_batches:
                predict(x)

        infer_pass()
        infer_rate = median_rate(infer_samples, infer_pass, args.passes)
        one = x_all[:1]
        for _ in range(20):
            predict(one)
        latency = median_latency_us(lambda: predict(one), args.latency_calls)

    return {
        "warmup_train_s": warmup_train,
        "warmup_infer_s": warmup_infer,
        "warmup_s": warmup_train + warmup_infer,
        "train_samples_per_s": train_rate,
        "infer_samples_per_s": infer_rate,
        "latency_b1_us": latency,
        "infer_method": "inference_mode" + (", torch.compile" if compiled else ""),
        "version": torch.__version__,
    }


# --------------------------------------------------------------------------- ONNX Runtime

def run_onnxruntime(args):
    import onnxruntime as ort

    path = args.onnx or os.path.join(os.path.dirname(os.path.abspath(__file__)), "out",
                                     "onnx", args.model + ".onnx")
    if not os.path.exists(path):
        raise SystemExit(f"{path} missing: write it with python3 tests/onnx/make_fixtures.py"
                         f" --out {os.path.dirname(path)} {args.model}")
    x_np, _, _ = load_data(args.model, args.samples)
    if x_np.ndim == 4:
        x_np = x_np.transpose(0, 3, 1, 2).copy()  # NHWC -> NCHW, as the ONNX file takes
    infer_batches = [x_np[i:i + INFER_BATCH]
                     for i in range(0, args.samples - INFER_BATCH + 1, INFER_BATCH)]
    infer_samples = INFER_BATCH * len(infer_batches)
    one = x_np[:1].copy()

    # Warm-up timed as the "compile" figure: creating the session (parsing, graph
    # optimization, kernel selection) and the first calls at batch 256 and batch 1.
    t0 = time.perf_counter()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    (in_name,) = [i.name for i in sess.get_inputs()]
    out_names = [o.name for o in sess.get_outputs()]
    warmup_session = time.perf_counter() - t0

    def predict(x):
        return sess.run(out_names, {in_name: x})[0]

    t0 = time.perf_counter()
    predict(infer_batches[0])
    predict(one)
    warmup_infer = time.perf_counter() - t0

    def infer_pass():
        for x in infer_batches:
            predict(x)

    infer_pass()
    infer_rate = median_rate(infer_samples, infer_pass, args.passes)
    for _ in range(20):
        predict(one)
    latency = median_latency_us(lambda: predict(one), args.latency_calls)

    return {
        "warmup_session_s": warmup_session,
        "warmup_infer_s": warmup_infer,
        "warmup_s": warmup_session + warmup_infer,
        "train_samples_per_s": None,
        "infer_samples_per_s": infer_rate,
        "latency_b1_us": latency,
        "infer_method": "InferenceSession.run, CPUExecutionProvider",
        "onnx_file": path,
        "version": ort.__version__,
    }


# --------------------------------------------------------------------------- Keras

def keras_model(model, keras):
    """The model in tf-keras 2.15 (channels_last), compiled as bench/models/*.c are."""
    layers = keras.layers
    if model == "seed_mlp":
        stack = [keras.Input((32,)), layers.Dense(16, activation="relu"),
                 layers.Dense(8, activation="softmax")]
    elif model == "mlp":
        stack = [keras.Input((28, 28, 1)), layers.Flatten(),
                 layers.Dense(128, activation="relu"), layers.Dense(10, activation="softmax")]
    elif model == "seed_cnn":
        stack = [keras.Input((28, 28, 1)),
                 layers.Conv2D(16, 3, strides=2, padding="same", activation="relu"),
                 layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(10, activation="softmax")]
    elif model == "convnet":
        stack = [keras.Input((28, 28, 1)), layers.Conv2D(32, 3, activation="relu"),
                 layers.MaxPooling2D(2), layers.Conv2D(64, 3, activation="relu"),
                 layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(10, activation="softmax")]
    else:
        raise ValueError(model)
    m = keras.Sequential(stack)
    m.compile(optimizer=keras.optimizers.Adam(learning_rate=LR, beta_1=BETA1, beta_2=BETA2,
                                              epsilon=EPS),
              loss="categorical_crossentropy", metrics=["accuracy"])
    return m


def run_keras(args):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    import tf_keras as keras

    # TensorFlow 2.15's AutoGraph leaves modules named "keras" unconverted but not
    # "tf_keras" (the same code under its new name), so the first fit would spend
    # ~25 s converting all of tf_keras' internals. Treat tf_keras as TF treats keras,
    # so the warm-up measured is Keras' own tracing, not this naming artifact.
    try:
        from tensorflow.python.autograph.core import config as autograph_config
        autograph_config.CONVERSION_RULES = autograph_config.CONVERSION_RULES + (
            autograph_config.DoNotConvert("tf_keras"),)
    except (ImportError, AttributeError):
        pass

    # Must happen before TensorFlow creates its thread pools (before any op runs).
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    keras.utils.set_random_seed(0)

    x, _, y = load_data(args.model, args.samples)
    m = keras_model(args.model, keras)

    def fit(xs, ys):
        m.fit(xs, ys, batch_size=TRAIN_BATCH, epochs=1, verbose=0, shuffle=False)

    # Warm-up timed as the "compile" figure: the first fit (traces train_function),
    # the first predict_on_batch at 256 and at 1 (trace predict_function).
    t0 = time.perf_counter()
    fit(x[:TRAIN_BATCH], y[:TRAIN_BATCH])
    warmup_train = time.perf_counter() - t0
    xb = x[:INFER_BATCH]
    one = x[:1]
    t0 = time.perf_counter()
    m.predict_on_batch(xb)
    m.predict_on_batch(one)
    warmup_infer = time.perf_counter() - t0

    fit(x, y)  # steady state
    train_rate = median_rate(args.samples, lambda: fit(x, y), args.passes)

    # Inference, three ways: predict_on_batch (Keras' traced predict_function, but a
    # tf.data iterator is built per call; takes the NumPy batch), model(x,
    # training=False) (eager layer calls) and the same call under tf.function (a
    # graph, no data adapter); the last two take tensors made beforehand, as the
    # torch peers do. The fastest is reported, and named.
    serve = tf.function(lambda b: m(b, training=False))
    candidates = {
        "predict_on_batch": (m.predict_on_batch, lambda a: a),
        "model(x, training=False)": (lambda b: m(b, training=False), tf.constant),
        "tf.function(model)": (serve, tf.constant),
    }
    infer_np = [x[i:i + INFER_BATCH] for i in range(0, args.samples - INFER_BATCH + 1, INFER_BATCH)]
    infer_samples = INFER_BATCH * len(infer_np)
    infer, lat = {}, {}
    for name, (call, convert) in candidates.items():
        batches = [convert(b) for b in infer_np]

        def infer_pass():
            for b in batches:
                np.asarray(call(b))

        infer_pass()
        infer[name] = median_rate(infer_samples, infer_pass, args.passes)
        single = convert(one)
        for _ in range(20):
            np.asarray(call(single))
        lat[name] = median_latency_us(lambda: np.asarray(call(single)), args.latency_calls)
    infer_best = max(infer, key=infer.get)
    lat_best = min(lat, key=lat.get)

    return {
        "warmup_train_s": warmup_train,
        "warmup_infer_s": warmup_infer,
        "warmup_s": warmup_train + warmup_infer,
        "train_samples_per_s": train_rate,
        "infer_samples_per_s": infer[infer_best],
        "latency_b1_us": lat[lat_best],
        "infer_method": infer_best,
        "latency_method": lat_best,
        "infer_all": infer,
        "latency_all": lat,
        "version": "tensorflow %s, tf_keras %s" % (tf.__version__, keras.__version__),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--peer", required=True,
                   choices=["torch-eager", "torch-compile", "keras", "onnxruntime"])
    p.add_argument("--model", required=True, choices=["seed_mlp", "mlp", "seed_cnn", "convnet"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="small data and few repetitions")
    p.add_argument("--onnx", help="onnxruntime: the model file (default"
                                  " bench/out/onnx/MODEL.onnx)")
    args = p.parse_args()
    # 100 batches of 64 (25 of 256) for timing; --quick: 16 batches of 64 (4 of 256).
    args.samples = 1024 if args.quick else 6400
    args.passes = 1 if args.quick else 3
    args.latency_calls = 50 if args.quick else 300
    if args.model == "convnet" and not args.quick:
        args.passes = 2  # the slow model: each pass is already seconds long

    if args.peer == "keras":
        result = run_keras(args)
    elif args.peer == "onnxruntime":
        result = run_onnxruntime(args)
    else:
        result = run_torch(args, compiled=(args.peer == "torch-compile"))
    result.update(peer=args.peer, model=args.model, threads=args.threads)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
