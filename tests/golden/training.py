#!/usr/bin/env python3
"""Writes tests/golden/fixtures/<case>.txt: training golden values of real Keras 2.15.

For each case a tiny model is built with tf_keras (float32), given fixed
weights drawn from np.random.RandomState(seed), and run on a small fixed data
set.  The fixture records the weights, the data, model.predict, evaluate(),
the gradient of the compiled loss w.r.t. every trainable weight for the full
data set as one batch (tf.GradientTape, mean over the batch as Keras takes
it), the weights after three train_on_batch steps on that batch, and a
2-epoch fit History (shuffle=False, batch_size 8 with a partial last batch,
validation_split 0.25) followed by evaluate().  tests/runtime/test_golden.c rebuilds
every model through the nncc C API, layer for layer and in the same creation
order (so automatic names agree), and compares.  Keep the two in step.

The format is described in tests/golden/README.md.

Run from anywhere:  python3 tests/golden/training.py [case ...]
Needs:              pip install "tensorflow-cpu==2.15.*" "tf-keras==2.15.*"
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402
from tf_keras import layers  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures")

EVAL_BATCH = 8
FIT_BATCH = 8
FIT_EPOCHS = 2
VALIDATION_SPLIT = 0.25
STEPS = 3

# ---- Models (mirrored in tests/runtime/test_golden.c) -------------------------------


def mlp_softmax():
    """Input(4) -> Dense(5, tanh) -> Dense(3, softmax): the optimizer cases."""
    x = keras.Input(shape=(4,))
    h = layers.Dense(5, activation="tanh")(x)
    y = layers.Dense(3, activation="softmax")(h)
    return keras.Model(x, y)


def mlp_out(units, activation, hidden="relu"):
    def build():
        x = keras.Input(shape=(4,))
        h = layers.Dense(6, activation=hidden)(x)
        y = layers.Dense(units, activation=activation)(h)
        return keras.Model(x, y)
    return build


def conv():
    x = keras.Input(shape=(6, 6, 2))
    h = layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(x)  # 3x3x4
    h = layers.MaxPooling2D(2, strides=1)(h)                                    # 2x2x4
    h = layers.Flatten()(h)
    y = layers.Dense(3, activation="softmax")(h)
    return keras.Model(x, y)


def pool():
    x = keras.Input(shape=(5, 5, 2))
    h = layers.Conv2D(3, 2, activation="elu")(x)                      # 4x4x3
    h = layers.AveragePooling2D(3, strides=2, padding="same")(h)      # 2x2x3, partial windows
    h = layers.GlobalAveragePooling2D()(h)                            # 3
    y = layers.Dense(2, activation="softmax")(h)
    return keras.Model(x, y)


def branch():
    x = keras.Input(shape=(5,))
    a = layers.Dense(4, activation="relu")(x)
    b = layers.Dense(4, activation="tanh")(x)
    s = layers.Add()([a, b])
    c = layers.Concatenate()([s, a, x])                               # 4 + 4 + 5
    y = layers.Dense(3, activation="softmax")(c)
    return keras.Model(x, y)


def dropout0():
    x = keras.Input(shape=(4,))
    h = layers.Dense(6, activation="relu")(x)
    h = layers.Dropout(0.0)(h)
    y = layers.Dense(3, activation="softmax")(h)
    return keras.Model(x, y)


ACTIVATIONS = ["relu", "tanh", "elu", "selu", "gelu", "swish", "softplus", "softsign",
               "hard_sigmoid", "leaky_relu"]


def activations():
    """One branch per activation, concatenated: Dense(3, act) named act_<name>."""
    x = keras.Input(shape=(4,))
    hs = [layers.Dense(3, activation=a, name="act_" + a)(x) for a in ACTIVATIONS]
    h = layers.Concatenate()(hs)
    y = layers.Dense(3, activation="softmax", name="out")(h)
    return keras.Model(x, y)


def leaky_elu():
    """Standalone LeakyReLU(0.2) and ELU(0.5) layers after linear Dense layers."""
    x = keras.Input(shape=(4,))
    h = layers.Dense(6)(x)
    h = layers.LeakyReLU(alpha=0.2)(h)                                # leaky_re_lu
    h = layers.Dense(5)(h)
    h = layers.ELU(alpha=0.5)(h)                                      # elu
    y = layers.Dense(3, activation="softmax")(h)
    return keras.Model(x, y)


def batchnorm_dense():
    """BatchNormalization training on 2-D input (Keras 2's non-fused path)."""
    x = keras.Input(shape=(4,))
    h = layers.Dense(5)(x)
    h = layers.BatchNormalization(momentum=0.8)(h)
    h = layers.Activation("relu")(h)
    y = layers.Dense(3, activation="softmax")(h)
    return keras.Model(x, y)


def batchnorm_conv():
    """BatchNormalization training on 4-D input (Keras 2's fused path, whose
    moving variance takes the batch variance times n/(n-1))."""
    x = keras.Input(shape=(5, 5, 2))
    h = layers.Conv2D(3, 3)(x)                                         # 3x3x3
    h = layers.BatchNormalization(momentum=0.7, epsilon=0.01)(h)
    h = layers.Activation("relu")(h)
    h = layers.Flatten()(h)
    y = layers.Dense(3, activation="softmax")(h)
    return keras.Model(x, y)


def batchnorm():
    """Inference only (training: batchnorm_dense, batchnorm_conv)."""
    x = keras.Input(shape=(4,))
    h = layers.Dense(5)(x)
    h = layers.BatchNormalization()(h)
    h = layers.Activation("relu")(h)
    y = layers.Dense(2)(h)
    return keras.Model(x, y)


# ---- Cases ------------------------------------------------------------------
# name: (model, optimizer factory, loss, metrics, labels, n, seed, note)
# labels: onehot:C | sparse:C (shape (n,)) | sparse1:C (shape (n, 1)) |
#         binary (n,) | binary1 (n, 1) | multilabel:C | regression:C | none

CCE = "categorical_crossentropy"
ACC = ["accuracy"]
O = keras.optimizers
CASES = {
    "sgd": (mlp_softmax, lambda: O.SGD(0.1), CCE, ACC, "onehot:3", 20, 1,
            "SGD(0.1)"),
    "sgd_momentum": (mlp_softmax, lambda: O.SGD(0.1, momentum=0.9), CCE, ACC, "onehot:3", 20, 1,
                     "SGD(0.1, momentum=0.9)"),
    "sgd_nesterov": (mlp_softmax, lambda: O.SGD(0.1, momentum=0.9, nesterov=True), CCE, ACC,
                     "onehot:3", 20, 1, "SGD(0.1, momentum=0.9, nesterov=True)"),
    "sgd_clipnorm": (mlp_softmax, lambda: O.SGD(0.1, momentum=0.9, clipnorm=0.4), CCE, ACC,
                     "onehot:3", 20, 1, "SGD(0.1, momentum=0.9, clipnorm=0.4): "
                     "kernels clipped, biases not"),
    "sgd_clipvalue": (mlp_softmax, lambda: O.SGD(0.1, momentum=0.9, clipvalue=0.05), CCE, ACC,
                      "onehot:3", 20, 1, "SGD(0.1, momentum=0.9, clipvalue=0.05)"),
    "sgd_global_clipnorm": (mlp_softmax, lambda: O.SGD(0.1, momentum=0.9, global_clipnorm=0.2),
                            CCE, ACC, "onehot:3", 20, 1,
                            "SGD(0.1, momentum=0.9, global_clipnorm=0.2)"),
    "adam": (mlp_softmax, lambda: O.Adam(), CCE, ACC, "onehot:3", 20, 1, "Adam() (defaults)"),
    "adam_lr": (mlp_softmax, lambda: O.Adam(0.05), CCE, ACC, "onehot:3", 20, 1, "Adam(0.05)"),
    "adam_amsgrad": (mlp_softmax, lambda: O.Adam(0.05, beta_2=0.5, amsgrad=True), CCE, ACC,
                     "onehot:3", 20, 1, "Adam(0.05, beta_2=0.5, amsgrad=True)"),
    "adagrad": (mlp_softmax, lambda: O.Adagrad(0.1), CCE, ACC, "onehot:3", 20, 1,
                "Adagrad(0.1)"),
    "rmsprop": (mlp_softmax, lambda: O.RMSprop(0.01), CCE, ACC, "onehot:3", 20, 1,
                "RMSprop(0.01)"),
    "rmsprop_momentum": (mlp_softmax, lambda: O.RMSprop(0.01, momentum=0.9), CCE, ACC,
                         "onehot:3", 20, 1, "RMSprop(0.01, momentum=0.9)"),
    "rmsprop_centered": (mlp_softmax, lambda: O.RMSprop(0.01, centered=True), CCE, ACC,
                         "onehot:3", 20, 1, "RMSprop(0.01, centered=True)"),
    # Losses.  Keras names the metric after the user's string: "mse" gives
    # the history key "mse", "mean_squared_error" the key "mean_squared_error".
    "mse": (mlp_out(2, None), lambda: O.SGD(0.05), "mean_squared_error", ["mse", "mae"],
            "regression:2", 16, 2, "MSE loss, metrics ['mse', 'mae'] (Keras keys mse, mae)"),
    "mae": (mlp_out(2, None), lambda: O.SGD(0.05), "mean_absolute_error",
            ["mean_squared_error", "mean_absolute_error"], "regression:2", 16, 3,
            "MAE loss, metrics ['mean_squared_error', 'mean_absolute_error']"),
    "bce_sigmoid": (mlp_out(1, "sigmoid"), lambda: O.SGD(0.1), "binary_crossentropy", ACC,
                    "binary1", 20, 4,
                    "Dense(1, sigmoid) + BCE (logits path), y (n, 1), accuracy -> binary"),
    "bce_clipped": (mlp_out(1, "hard_sigmoid"), lambda: O.SGD(0.1), "binary_crossentropy", ACC,
                    "binary", 20, 5,
                    "Dense(1, hard_sigmoid) + BCE (clipped path, some outputs saturate at 0/1), "
                    "y (n,), accuracy -> binary"),
    "bce_multilabel": (mlp_out(3, "sigmoid"), lambda: O.SGD(0.1), "binary_crossentropy", ACC,
                       "multilabel:3", 16, 6,
                       "Dense(3, sigmoid) + BCE, accuracy -> categorical (from shapes)"),
    "cce_logits": (mlp_out(3, None), lambda: O.SGD(0.1), CCE, ACC, "onehot:3", 16, 7,
                   "linear output, categorical_crossentropy(from_logits=True)"),
    "cce_softplus": (mlp_out(3, "softplus"), lambda: O.SGD(0.1), CCE, ACC, "onehot:3", 16, 8,
                     "Dense(3, softplus) + CCE: renormalised and clipped probabilities"),
    "scce": (mlp_out(3, "softmax"), lambda: O.SGD(0.1), "sparse_categorical_crossentropy", ACC,
             "sparse:3", 16, 9, "sparse CCE, labels (n,), accuracy -> sparse"),
    "scce_n1": (mlp_out(3, "softmax"), lambda: O.SGD(0.1), "sparse_categorical_crossentropy",
                ACC, "sparse1:3", 16, 9, "sparse CCE, labels (n, 1), accuracy -> sparse"),
    # Layers.
    "conv": (conv, lambda: O.SGD(0.1), CCE, ACC, "onehot:3", 16, 10,
             "Conv2D(4, 3, strides=2, same, relu) + MaxPooling2D(2, 1) + Flatten + Dense"),
    "pool": (pool, lambda: O.SGD(0.1), CCE, ACC, "onehot:2", 16, 11,
             "Conv2D(3, 2, elu) + AveragePooling2D(3, 2, same) + GlobalAveragePooling2D"),
    "branch": (branch, lambda: O.SGD(0.1), CCE, ACC, "onehot:3", 16, 12,
               "Dense relu / Dense tanh -> Add -> Concatenate([add, relu, input])"),
    "dropout0": (dropout0, lambda: O.SGD(0.1), CCE, ACC, "onehot:3", 16, 13,
                 "Dropout(0.0) between Dense layers (identity)"),
    "activations": (activations, lambda: O.SGD(0.1), CCE, ACC, "onehot:3", 20, 14,
                    "ten Dense(3, act) branches: " + ", ".join(ACTIVATIONS)),
    # Seed 40: at every weight state of the case (initial, the 3 steps, the 4
    # fit batches) no LeakyReLU/ELU input is within 1.8e-3 of 0 and no accuracy
    # decision within 3.7e-3 of a tie; every unit of both layers sees both signs.
    "leaky_elu": (leaky_elu, lambda: O.SGD(0.1), CCE, ACC, "onehot:3", 16, 40,
                  "Dense(6) -> LeakyReLU(alpha=0.2) -> Dense(5) -> ELU(alpha=0.5) -> "
                  "Dense(3, softmax): standalone layers, inputs of both signs"),
    "batchnorm_dense": (batchnorm_dense, lambda: O.SGD(0.1), CCE, ACC, "onehot:3", 16, 50,
                        "Dense(5) -> BatchNormalization(momentum=0.8) -> relu -> Dense(3, "
                        "softmax): batch statistics in training, moving mean and variance"),
    "batchnorm_conv": (batchnorm_conv, lambda: O.SGD(0.1), CCE, ACC, "onehot:3", 16, 51,
                       "Conv2D(3, 3) -> BatchNormalization(momentum=0.7, epsilon=0.01) -> "
                       "relu -> Flatten -> Dense(3, softmax): the fused path's n/(n-1)"),
    "batchnorm": (batchnorm, None, None, None, "none", 8, 15,
                  "inference only: Dense -> BatchNormalization -> relu -> Dense (predict)"),
}


# ---- Data and weights -------------------------------------------------------


def make_data(model, labels, n, rs):
    in_shape = tuple(model.input_shape[1:])
    x = rs.normal(size=(n,) + in_shape).astype(np.float32)
    kind, _, c = labels.partition(":")
    c = int(c or 1)
    flat = x.reshape(n, -1)
    teacher = rs.normal(size=(flat.shape[1], max(c, 1)))
    z = flat @ teacher + 0.5 * rs.normal(size=(n, max(c, 1)))
    if kind == "onehot":
        y = np.eye(c, dtype=np.float32)[np.argmax(z, axis=1)]
    elif kind == "sparse":
        y = np.argmax(z, axis=1).astype(np.int32)
    elif kind == "sparse1":
        y = np.argmax(z, axis=1).astype(np.int32).reshape(n, 1)
    elif kind == "binary":
        y = (z[:, 0] > 0).astype(np.float32)
    elif kind == "binary1":
        y = (z[:, :1] > 0).astype(np.float32)
    elif kind == "multilabel":
        y = (z > 0).astype(np.float32)
    elif kind == "regression":
        y = np.tanh(z).astype(np.float32)
    else:
        y = None
    return x, y


# Weights multiplied after drawing, to reach a regime (saturation) on purpose.
WEIGHT_SCALE = {
    "bce_clipped": {"dense_1/kernel": 8.0},
}


def set_weights(model, rs, scale=None):
    """Glorot-uniform-like kernels, small non-zero biases; BN stats non-trivial."""
    values = []
    for w in model.weights:
        shape = tuple(w.shape)
        name = w.name.split("/")[-1].split(":")[0]
        if name == "kernel":
            fan_in = int(np.prod(shape[:-1]))
            fan_out = shape[-1] * (int(np.prod(shape[:-2])) if len(shape) > 2 else 1)
            lim = np.sqrt(6.0 / (fan_in + fan_out))
            v = rs.uniform(-lim, lim, size=shape)
        elif name == "bias" or name == "beta" or name == "moving_mean":
            v = rs.uniform(-0.2, 0.2, size=shape)
        elif name == "gamma":
            v = rs.uniform(0.5, 1.5, size=shape)
        elif name == "moving_variance":
            v = rs.uniform(0.5, 2.0, size=shape)
        else:
            raise ValueError(f"no rule for weight {w.name}")
        v = v * (scale or {}).get(weight_name(w), 1.0)
        values.append(v.astype(np.float32))
    model.set_weights(values)


def weight_name(w):
    return w.name.split(":")[0]  # "dense/kernel:0" -> "dense/kernel"


# ---- Writing ----------------------------------------------------------------


def fmt(v):
    return "%.9g" % float(v)


class Fixture:
    def __init__(self):
        self.lines = []

    def comment(self, text):
        self.lines.append("# " + text)

    def scalar(self, name, v):
        self.lines.append(f"scalar {name} {fmt(v)}")

    def tensor(self, name, a):
        a = np.asarray(a, dtype=np.float32)
        dims = " ".join(str(d) for d in a.shape)
        vals = " ".join(fmt(v) for v in a.reshape(-1))
        self.lines.append(f"tensor {name} {a.ndim} {dims} : {vals}")

    def history(self, name, vs):
        self.lines.append(f"history {name} " + " ".join(fmt(v) for v in vs))


def logs_of(model, values):
    if not isinstance(values, (list, tuple)):
        values = [values]
    return dict(zip(model.metrics_names, values))


def fresh(name, build, seed):
    """A new model with the case's weights (same creation order, same names)."""
    keras.backend.clear_session()
    model = build()
    set_weights(model, np.random.RandomState(seed), WEIGHT_SCALE.get(name))
    return model


def run_case(name, case):
    build, opt, loss, metrics, labels, n, seed, note = case
    fx = Fixture()
    fx.comment(f"{name}: {note}")
    fx.comment("written by tests/golden/training.py (tf_keras %s, TensorFlow %s); do not edit"
               % (keras.__version__, tf.__version__))
    model = fresh(name, build, seed)
    for layer in model.layers:
        if isinstance(layer, KINK_LAYERS):
            fx.comment("config %s: %s %s" % (layer.name, type(layer).__name__,
                                             json.dumps(layer.get_config())))
    x, y = make_data(model, labels, n, np.random.RandomState(1000 + seed))
    fx.scalar("n", n)
    fx.tensor("x", x)
    if y is not None:
        fx.tensor("y", y)
    for w in model.weights:
        fx.tensor("w0:" + weight_name(w), w.numpy())
    pred = model.predict(x, batch_size=EVAL_BATCH, verbose=0)
    fx.tensor("pred", pred)
    if opt is None:
        return fx
    fx.scalar("eval_batch_size", EVAL_BATCH)
    fx.scalar("steps", STEPS)
    fx.scalar("fit_batch_size", FIT_BATCH)
    fx.scalar("fit_epochs", FIT_EPOCHS)
    fx.scalar("validation_split", VALIDATION_SPLIT)
    from_logits = name == "cce_logits"
    loss_obj = keras.losses.get(loss) if not from_logits else \
        keras.losses.CategoricalCrossentropy(from_logits=True)

    # evaluate() and the gradients at the initial weights.
    model.compile(optimizer=opt(), loss=loss_obj, metrics=list(metrics))
    ev = logs_of(model, model.evaluate(x, y, batch_size=EVAL_BATCH, verbose=0))
    for k, v in ev.items():
        fx.scalar("eval:" + k, v)
    # A call in training mode updates BatchNormalization's moving statistics
    # (eagerly): put them back, so the steps below start where nncc's do.
    frozen = [w.numpy() for w in model.non_trainable_weights]
    with tf.GradientTape() as tape:
        out = model(tf.constant(x), training=True)
        lv = model.compiled_loss(tf.constant(y), out, regularization_losses=model.losses)
    grads = tape.gradient(lv, model.trainable_weights)
    for w, v in zip(model.non_trainable_weights, frozen):
        w.assign(v)
    fx.scalar("batch_loss", lv.numpy())
    for w, g in zip(model.trainable_weights, grads):
        fx.tensor("grad:" + weight_name(w), g.numpy())
    check_margins(name, model, x, grads, opt)
    check_kinks(name, model, x, "initial weights", both_signs=True)

    # Three optimizer steps on the whole data set as one batch.
    step_logs = []
    for k in range(STEPS):
        step_logs.append(logs_of(model, model.train_on_batch(x, y)))
        check_kinks(name, model, x, f"after step {k + 1}")
    for k in step_logs[0]:
        fx.history("step:" + k, [s[k] for s in step_logs])
    # Every weight: BatchNormalization's moving statistics are not trainable.
    for w in model.weights:
        fx.tensor(f"w{STEPS}:" + weight_name(w), w.numpy())

    # A 2-epoch fit with validation from fresh weights and a fresh optimizer.
    model = fresh(name, build, seed)
    model.compile(optimizer=opt(), loss=loss_obj, metrics=list(metrics))
    callbacks = [KinkCheck(name, x)] if kink_layers(model) else []
    h = model.fit(x, y, batch_size=FIT_BATCH, epochs=FIT_EPOCHS, shuffle=False,
                  validation_split=VALIDATION_SPLIT, verbose=0, callbacks=callbacks)
    for k, vs in h.history.items():
        fx.history(k, vs)
    for w in model.weights:
        fx.tensor("wfit:" + weight_name(w), w.numpy())
    ev = logs_of(model, model.evaluate(x, y, batch_size=EVAL_BATCH, verbose=0))
    for k, v in ev.items():
        fx.scalar("fit_eval:" + k, v)
    return fx


def check_margins(name, model, x, grads, opt):
    """Warns about values that float noise could flip between frameworks."""
    p = model.predict(x, verbose=0)
    if p.shape[-1] == 1:
        gap = np.min(np.abs(p - 0.5))
    else:
        s = np.sort(p, axis=-1)
        gap = np.min(s[..., -1] - s[..., -2])
    if gap < 1e-4:
        print(f"warning: {name}: an accuracy decision is within {gap:g} of a tie")
    small = min(float(np.min(np.abs(g.numpy())[np.abs(g.numpy()) > 0], initial=1))
                for g in grads)
    if small < 1e-5 and not isinstance(opt(), keras.optimizers.SGD):
        print(f"warning: {name}: a gradient of {small:g}: sign-like updates are unstable")


# Standalone layers whose formula switches branch at an input of 0.
KINK_LAYERS = (layers.LeakyReLU, layers.ELU)
KINK_MARGIN = 1e-4


def kink_layers(model):
    return [layer for layer in model.layers if isinstance(layer, KINK_LAYERS)]


def check_kinks(name, model, x, when, both_signs=False):
    """Warns when an input of a LeakyReLU/ELU layer (on the whole data set) is
    within KINK_MARGIN of 0, where float noise could flip the branch taken
    (and so the gradient); with both_signs, also when a layer's inputs are not
    of both signs, which would leave a branch untested."""
    kl = kink_layers(model)
    if not kl:
        return
    zs = keras.Model(model.inputs, [layer.input for layer in kl])(tf.constant(x))
    if len(kl) == 1:
        zs = [zs]
    for layer, z in zip(kl, zs):
        z = z.numpy()
        m = float(np.min(np.abs(z)))
        if m < KINK_MARGIN:
            print(f"warning: {name}: {when}: an input of {layer.name} is {m:g} from 0")
        if both_signs and not (np.any(z < 0) and np.any(z > 0)):
            print(f"warning: {name}: {when}: the inputs of {layer.name} are of one sign")


class KinkCheck(keras.callbacks.Callback):
    """check_kinks() at every weight state fit() passes through."""

    def __init__(self, name, x):
        super().__init__()
        self.case, self.x, self.batches = name, x, 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        check_kinks(self.case, self.model, self.x, f"fit, after batch {self.batches}")


def main(argv):
    os.makedirs(OUT, exist_ok=True)
    names = argv or list(CASES)
    for name in names:
        fx = run_case(name, CASES[name])
        path = os.path.join(OUT, name + ".txt")
        with open(path, "w") as f:
            f.write("\n".join(fx.lines) + "\n")
        print(f"wrote {os.path.relpath(path)} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main(sys.argv[1:])
