#!/usr/bin/env python3
"""make_fixtures.py -- write the Keras model fixtures nncc's Keras reader is tested on.

Run once per Keras version (the files of the other version are left alone):

    TF_CPP_MIN_LOG_LEVEL=3 ~/k215/bin/python tests/keras/make_fixtures.py   # tf-keras 2.15
    TF_CPP_MIN_LOG_LEVEL=3 python3 tests/keras/make_fixtures.py                     # Keras 3

Which Keras is used: `--keras 2` imports tf_keras, `--keras 3` imports keras; without the
flag, keras when `import keras` is Keras 3, else tf_keras.

For each model (seq_mlp, func_mlp, cnn, fmnist_mlp, fmnist_cnn, mixed, plus mixed_rate0)
the script compiles, fits 2 epochs (shuffle=False) and saves the trained model in both
formats the running Keras writes: Keras 2 -> <name>.k2.h5 and <name>.k2.keras, Keras 3 ->
<name>.k3.keras and <name>.k3.h5 (legacy HDF5).  Next to each file, <file>.json records what
nncc must reproduce: predictions on the first 8 training rows, the optimizer's iteration
count and learning rate, and a one-epoch continuation (load_model on the saved file, fit one
more epoch, the epoch's loss/metrics, iterations and predictions after).  Every saved file
is reloaded and its predictions compared with the pre-save ones (bit-exact) before the JSON
is written; a mismatch stops the script.

Synthetic training data is written as <name>.x.npy / <name>.y.npy (float32, labels too),
generated identically by both runs from a fixed np.random.RandomState per model; a second
run checks that the existing files are identical.  The Fashion-MNIST models read the first
256 training rows from /usr/share/datasets/fashion-mnist (not committed).
"""

import argparse
import gzip
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import keras_check  # noqa: E402  (fix_k3_h5_optimizer)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures")
FMNIST_DIR = "/usr/share/datasets/fashion-mnist"
FMNIST_ROWS = 256
PREDICT_ROWS = 8
EPOCHS = 2


def import_keras(which):
    """Return (keras module, major version) for --keras 2|3 or auto-detection.

    Auto: `import keras`; if that is Keras 3 use it, else use tf_keras (the tf-keras 2.x
    package).  tf_keras alone cannot decide it: Keras 3 environments often have tf_keras
    installed too (a newer 2.x than the 2.15 the fixtures are meant for).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if which == 2:
        import tf_keras as keras
        return keras, 2
    try:
        import keras
        major = int(keras.__version__.split(".")[0])
    except ImportError:
        keras, major = None, 0
    if major >= 3:
        return keras, major
    if which == 3:
        sys.exit("--keras 3 asked for, but `import keras` gives %s" %
                 (keras.__version__ if keras else "nothing"))
    import tf_keras as keras
    return keras, 2


def deterministic(keras, seed):
    """Same weights, dropout masks and op order on every run."""
    import tensorflow as tf
    keras.backend.clear_session()  # layer names restart at dense, dense_1, ...
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


# ---- data -------------------------------------------------------------------------------

def one_hot(labels, n):
    out = np.zeros((labels.shape[0], n), np.float32)
    out[np.arange(labels.shape[0]), labels] = 1.0
    return out


def synthetic(name):
    """Training data of the synthetic models: (x, y) float32, fixed seed per model."""
    if name == "seq_mlp":
        rs = np.random.RandomState(1501)
        x = rs.standard_normal((64, 32)).astype(np.float32)
        y = one_hot(rs.randint(0, 8, size=64), 8)
    elif name == "func_mlp":
        rs = np.random.RandomState(1502)
        x = rs.standard_normal((64, 32)).astype(np.float32)
        y = one_hot(rs.randint(0, 8, size=64), 8)
    elif name == "cnn":
        # 16 rows, not 64: a 64x64x3 float32 row is 48 KiB and the committed files must
        # stay small; batch 8 keeps two steps per epoch.
        rs = np.random.RandomState(1503)
        x = rs.random_sample((16, 64, 64, 3)).astype(np.float32)
        y = rs.randint(0, 4, size=16).astype(np.float32)  # sparse labels, as float32
    elif name == "untrained":
        rs = np.random.RandomState(1509)
        x = rs.standard_normal((32, 10)).astype(np.float32)
        y = one_hot(rs.randint(0, 3, size=32), 3)
    elif name == "zoo":
        rs = np.random.RandomState(1508)
        x = rs.standard_normal((32, 10, 10, 2)).astype(np.float32)
        y = rs.random_sample((32, 3)).astype(np.float32)
    elif name == "nested":
        rs = np.random.RandomState(1507)
        x = rs.standard_normal((48, 6)).astype(np.float32)
        y = one_hot(rs.randint(0, 3, size=48), 3)
    elif name == "mixed":
        rs = np.random.RandomState(1506)
        x = rs.standard_normal((64, 12)).astype(np.float32)
        y = (rs.random_sample((64, 3)) < 0.5).astype(np.float32)  # multi-label 0/1
    else:
        raise ValueError(name)
    return x, y


def synthetic_files(name):
    """Write (or check) <name>.x.npy/.y.npy; return (x, y, data description)."""
    x, y = synthetic(name)
    files = {"x": name + ".x.npy", "y": name + ".y.npy"}
    for key, arr in (("x", x), ("y", y)):
        path = os.path.join(OUT, files[key])
        if os.path.exists(path):
            old = np.load(path)
            if old.dtype != arr.dtype or old.shape != arr.shape or not np.array_equal(old, arr):
                sys.exit("%s differs from the data generated now" % path)
        else:
            np.save(path, arr)
    return x, y, {"source": "npy", "x": files["x"], "y": files["y"],
                  "rows": int(x.shape[0])}


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fashion(encoding):
    """First 256 Fashion-MNIST training rows, scaled /255, (N,28,28,1) float32."""
    images = read_idx(os.path.join(FMNIST_DIR, "train-images-idx3-ubyte.gz"))[:FMNIST_ROWS]
    labels = read_idx(os.path.join(FMNIST_DIR, "train-labels-idx1-ubyte.gz"))[:FMNIST_ROWS]
    x = (images.astype(np.float32) / np.float32(255.0)).reshape(FMNIST_ROWS, 28, 28, 1)
    y = labels.astype(np.float32) if encoding == "sparse" else one_hot(labels, 10)
    return x, y, {"source": "fashion-mnist", "rows": FMNIST_ROWS, "labels": encoding,
                  "scale": "uint8 / 255 as float32", "shape": [FMNIST_ROWS, 28, 28, 1]}


# ---- models -----------------------------------------------------------------------------

def build(keras, name):
    """Return (model, optimizer, loss, seed, batch_size) for one fixture."""
    L = keras.layers
    if name == "seq_mlp":
        # The tutorial's form: input_shape= on the first Dense (Keras 3 warns that it
        # prefers keras.Input, but accepts it; the file then has an InputLayer first, and
        # in Keras 2 also batch_input_shape in the first Dense's config).
        m = keras.Sequential([L.Dense(16, activation="relu", input_shape=(32,)),
                              L.Dense(8, activation="softmax")])
        return m, keras.optimizers.Adam(1e-3), "categorical_crossentropy", 32
    if name == "func_mlp":
        x = keras.Input(shape=(32,))
        h = L.Dense(16, activation="relu")(x)
        y = L.Dense(8, activation="softmax")(h)
        return (keras.Model(x, y), keras.optimizers.SGD(learning_rate=0.05, momentum=0.9),
                "categorical_crossentropy", 32)
    if name == "cnn":
        x = keras.Input(shape=(64, 64, 3))
        h = L.Conv2D(16, (3, 3), strides=(2, 2), padding="same", activation="relu")(x)
        h = L.MaxPooling2D((2, 2))(h)
        h = L.Flatten()(h)
        y = L.Dense(4, activation="softmax")(h)
        return (keras.Model(x, y), keras.optimizers.RMSprop(learning_rate=1e-3),
                "sparse_categorical_crossentropy", 8)
    if name == "fmnist_mlp":
        x = keras.Input(shape=(28, 28, 1))
        h = L.Flatten()(x)
        h = L.Dense(32, activation="relu")(h)
        y = L.Dense(10, activation="softmax")(h)
        return keras.Model(x, y), keras.optimizers.Adam(), "sparse_categorical_crossentropy", 32
    if name == "fmnist_cnn":
        x = keras.Input(shape=(28, 28, 1))
        h = L.Conv2D(8, (3, 3), activation="relu")(x)
        h = L.MaxPooling2D((2, 2))(h)
        h = L.Conv2D(16, (3, 3), activation="relu")(h)
        h = L.MaxPooling2D((2, 2))(h)
        h = L.Flatten()(h)
        y = L.Dense(10, activation="softmax")(h)
        return (keras.Model(x, y), keras.optimizers.Adagrad(learning_rate=0.01),
                "categorical_crossentropy", 32)
    if name == "mixed":
        x = keras.Input(shape=(12,))
        h = L.Dense(16, activation="relu")(x)
        a = L.BatchNormalization()(h)
        b = L.Dropout(0.25)(a)
        c = L.Dense(16)(b)
        d = L.Add()([a, c])
        e = L.Concatenate()([d, x])
        y = L.Dense(3, activation="sigmoid")(e)
        return (keras.Model(x, y), keras.optimizers.Adam(learning_rate=0.002),
                "binary_crossentropy", 32)
    if name == "nested":
        # A layer called twice (shared weights) and a Sequential model used as a layer
        # (nncc flattens it into the outer model).
        inner = keras.Sequential([L.Dense(8, activation="relu", input_shape=(6,)),
                                  L.Dense(6)], name="inner")
        x = keras.Input(shape=(6,))
        shared = L.Dense(6, activation="tanh", name="shared")
        a = shared(x)
        b = shared(a)
        c = inner(b)
        y = L.Dense(3, activation="softmax")(L.Concatenate()([a, c]))
        return (keras.Model(x, y), keras.optimizers.Adam(learning_rate=0.01),
                "categorical_crossentropy", 16)
    if name == "untrained":
        # Compiled and saved before any fit: the optimizer's slots do not exist yet.
        m = keras.Sequential([L.Dense(5, activation="relu", input_shape=(10,)),
                              L.Dense(3, activation="softmax")])
        return m, keras.optimizers.RMSprop(learning_rate=0.01, momentum=0.5), \
            "categorical_crossentropy", 8
    if name == "zoo":
        # The layer kinds and activations the other fixtures lack, Adam with amsgrad
        # (a third slot, built after every m and v), mse with the mae metric.
        x = keras.Input(shape=(10, 10, 2))
        h = L.Conv2D(4, 3, padding="same", activation="selu", kernel_initializer="he_normal")(x)
        h = L.AveragePooling2D(2)(h)
        h = L.LeakyReLU(0.1)(h)
        g = L.GlobalAveragePooling2D()(h)
        f = L.Flatten()(h)
        f = L.Reshape((10, 10))(f)
        f = L.Flatten()(f)
        f = L.Dense(8, activation="softplus")(f)
        f = L.ELU(alpha=0.7)(f)
        f = L.Dense(8, activation="gelu", kernel_initializer="lecun_uniform")(f)
        f = L.Activation("softsign")(f)
        t = L.Dense(8, activation="swish", use_bias=False)(f)
        u = L.Activation("tanh")(f)
        y = L.Dense(3, activation="sigmoid")(L.Concatenate()([g, t, u]))
        return (keras.Model(x, y), keras.optimizers.Adam(learning_rate=0.01, amsgrad=True),
                "mean_squared_error", 16)
    raise ValueError(name)


SEEDS = {"untrained": 19, "zoo": 18, "seq_mlp": 11, "func_mlp": 12, "cnn": 13, "fmnist_mlp": 14, "fmnist_cnn": 15,
         "mixed": 16, "nested": 17}


def data_for(name):
    if name == "fmnist_mlp":
        return fashion("sparse")
    if name == "fmnist_cnn":
        return fashion("onehot")
    return synthetic_files(name)


# ---- recording --------------------------------------------------------------------------

def floats(a):
    """float32 array -> list of Python floats (exact: float32 widens to float64)."""
    return [float(v) for v in np.asarray(a, np.float32).reshape(-1)]


def opt_state(model):
    opt = model.optimizer
    return int(np.asarray(opt.iterations)), float(np.asarray(opt.learning_rate))


def jsonable(v):
    """Optimizer config values -> JSON (numpy scalars to Python, others repr'd)."""
    if isinstance(v, (bool, int, float, str)) or v is None:
        return v
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, dict):
        return {k: jsonable(w) for k, w in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(w) for w in v]
    try:
        return float(np.asarray(v))
    except Exception:
        return repr(v)


def save_and_record(keras, major, name, model, x, y, batch, data, seed, history):
    """Save `model` in both formats, verify each by reloading, write <file>.json."""
    px = x[:PREDICT_ROWS]
    pred = model.predict(px, verbose=0)
    iters, lr = opt_state(model)
    exts = ["h5", "keras"] if major == 2 else ["keras", "h5"]
    losses = []
    for ext in exts:
        fname = "%s.k%d.%s" % (name, major, ext)
        path = os.path.join(OUT, fname)
        if os.path.exists(path):
            os.remove(path)
        if major >= 3 and "optimizer" not in model._compile_config.config:
            # Keras 3's legacy-h5 writer pops "optimizer" out of the model's own
            # compile config (saving_utils.model_metadata); a .keras saved later from
            # the same model would have no optimizer.  Put it back.
            model._compile_config.config["optimizer"] = \
                keras.saving.serialize_keras_object(model.optimizer)
        model.save(path)

        # Reload fresh; predictions must be bit-identical to the pre-save ones.
        deterministic(keras, seed + 100)
        loaded = keras.models.load_model(path)
        lpred = loaded.predict(px, verbose=0)
        if not np.array_equal(lpred, pred):
            sys.exit("%s: reloaded predictions differ by %g" %
                     (fname, float(np.max(np.abs(lpred - pred)))))
        # A freshly loaded Keras 3 optimizer may not be built until the first step; its
        # iterations are read after fit below and compared with the expected count.
        liters_before, llr = opt_state(loaded)
        # Keras 3's legacy-h5 loader drops the optimizer slots (see keras_check.py);
        # restore them from the file so the continuation is the one the file describes.
        fixed = (major >= 3 and ext == "h5" and
                 keras_check.fix_k3_h5_optimizer(keras, loaded, path) != "")
        if major >= 3 and ext == "h5" and iters == 0:
            # Keras 3's legacy-h5 loader cannot fit even a never-trained model (the same
            # "Unknown variable"); a fresh optimizer of the same config is that state.
            loaded.compile(optimizer=type(loaded.optimizer).from_config(
                loaded.optimizer.get_config()), loss=loaded.loss, metrics=["accuracy"])

        # Continuation: one more epoch on the same data from the loaded file.
        h = loaded.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)
        citers, clr = opt_state(loaded)
        cpred = loaded.predict(px, verbose=0)
        steps = -(-x.shape[0] // batch)
        if citers != iters + steps:
            sys.exit("%s: iterations after the continuation %d, expected %d + %d "
                     "(optimizer state not restored?)" % (fname, citers, iters, steps))

        rec = {
            "file": fname,
            "keras_version": keras.__version__,
            "keras_major": major,
            "model": name,
            "data": data,
            "seed": seed,
            "compile": {
                "optimizer": type(model.optimizer).__name__,
                "optimizer_config": jsonable(model.optimizer.get_config()),
                "loss": model.loss if isinstance(model.loss, str) else repr(model.loss),
                "metrics": ["accuracy"],
            },
            "training": {"epochs": EPOCHS, "batch_size": batch, "shuffle": False,
                         "history": {k: [float(v) for v in vs]
                                     for k, vs in history.history.items()}},
            "predict_rows": PREDICT_ROWS,
            "predictions": {"shape": list(pred.shape), "values": floats(pred)},
            "iterations": iters,
            "learning_rate": lr,
            "loaded": {"iterations_before_fit": liters_before, "learning_rate": llr,
                       "optimizer_slots_restored_by_keras_check": bool(fixed)},
            "continuation": {
                "epochs": 1, "batch_size": batch, "shuffle": False,
                "history": {k: float(vs[0]) for k, vs in h.history.items()},
                "iterations": citers,
                "learning_rate": clr,
                "predictions": {"shape": list(cpred.shape), "values": floats(cpred)},
            },
        }
        with open(path + ".json", "w") as f:
            json.dump(rec, f, indent=1)
            f.write("\n")
        print("%-22s iterations %d -> %d, continuation %s" %
              (fname, iters, citers, rec["continuation"]["history"]))
        losses.append(rec["continuation"]["history"]["loss"])

    # The loaded files must continue exactly as the model in memory does: proves the
    # optimizer slots (not only the iteration count) were saved and restored.  Not for the
    # models with Dropout (their masks depend on RNG state the files do not carry).
    if not name.startswith("mixed"):
        keras.utils.set_random_seed(seed + 100)
        mem = model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)
        mloss = float(mem.history["loss"][0])
        for fl in losses:
            if abs(fl - mloss) > 1e-6 * abs(mloss):
                sys.exit("%s: continuation loss from the file %r, in memory %r" %
                         (name, fl, mloss))
        print("%-22s in-memory continuation loss %r (files agree)" % (name, mloss))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keras", type=int, choices=(2, 3))
    ap.add_argument("--only", nargs="*", help="model names (default: all)")
    args = ap.parse_args()
    keras, major = import_keras(args.keras)
    print("Keras", keras.__version__)
    os.makedirs(OUT, exist_ok=True)

    names = args.only or ["seq_mlp", "func_mlp", "cnn", "fmnist_mlp", "fmnist_cnn", "mixed",
                          "nested", "zoo", "untrained"]
    for name in names:
        seed = SEEDS[name]
        x, y, data = data_for(name)
        deterministic(keras, seed)
        model, opt, loss, batch = build(keras, name)
        model.compile(optimizer=opt, loss=loss, metrics=["mae"] if name == "zoo" else ["accuracy"])
        hist = model.fit(x, y, batch_size=batch, epochs=0 if name == "untrained" else EPOCHS,
                         shuffle=False, verbose=0)
        save_and_record(keras, major, name, model, x, y, batch, data, seed, hist)
        if name == "mixed":
            # Dropout masks cannot match between two frameworks: the same trained model
            # with every Dropout's rate set to 0 gives a continuation nncc can reproduce.
            for layer in model.layers:
                if isinstance(layer, keras.layers.Dropout):
                    layer.rate = 0.0
            save_and_record(keras, major, "mixed_rate0", model, x, y, batch,
                            data, seed, hist)


if __name__ == "__main__":
    main()
