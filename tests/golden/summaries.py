#!/usr/bin/env python3
"""Writes tests/expected/summary_<name>.txt: model.summary() of real Keras 2.15.

Each model here is rebuilt layer for layer, in the same creation order, by
tests/frontend/test_summary.c through the nncc C API (and four of them are the files
in examples/), which compares nncc_summary()'s output byte for byte with
these files.  Keep the two in step.

Run from anywhere:  python3 tests/golden/summaries.py
Needs:              pip install "tensorflow-cpu==2.15.*" "tf-keras==2.15.*"
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import tf_keras as keras  # noqa: E402
from tf_keras import layers  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(os.path.dirname(HERE), "expected")


def seed_sequential():
    return keras.Sequential([
        layers.Dense(16, activation="relu", input_shape=(32,)),
        layers.Dense(8, activation="softmax"),
    ])


def seed_functional():
    x = keras.Input(shape=(32,))
    h = layers.Dense(16, activation="relu")(x)
    y = layers.Dense(8, activation="softmax")(h)
    return keras.Model(x, y)


def seed_cnn():
    x = keras.Input(shape=(64, 64, 3))
    h = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
    h = layers.MaxPooling2D(2)(h)
    h = layers.Flatten()(h)
    y = layers.Dense(4, activation="softmax")(h)
    return keras.Model(x, y)


def inception_block():
    # examples/inception_block.c
    x = keras.Input(shape=(32, 32, 16), name="features")
    b1 = layers.Conv2D(8, 1, padding="same", activation="relu")(x)
    b2 = layers.Conv2D(8, 1, padding="same", activation="relu")(x)
    b2 = layers.Conv2D(16, 3, padding="same", activation="relu")(b2)
    b3 = layers.MaxPooling2D(3, strides=1, padding="same")(x)
    b3 = layers.Conv2D(8, 1, padding="same", activation="relu")(b3)
    h = layers.Concatenate(axis=-1)([b1, b2, b3])
    h = layers.GlobalAveragePooling2D()(h)
    y = layers.Dense(10, activation="softmax")(h)
    return keras.Model(x, y, name="inception_block")


def shared():
    # One Dense object called on two inputs: its second call is dense[1][0].
    a = keras.Input(shape=(8,))
    b = keras.Input(shape=(8,))
    d = layers.Dense(4, activation="relu")
    s = layers.Add()([d(a), d(b)])
    y = layers.Dense(1)(s)
    return keras.Model([a, b], y)


def shared_multiple():
    # One MaxPooling2D object called on two shapes: Output Shape "multiple".
    a = keras.Input(shape=(8, 8, 3))
    b = keras.Input(shape=(4, 4, 3))
    pool = layers.MaxPooling2D(2)
    ga = layers.GlobalAveragePooling2D()(pool(a))
    gb = layers.GlobalAveragePooling2D()(pool(b))
    c = layers.Concatenate()([ga, gb])
    y = layers.Dense(2, activation="softmax")(c)
    return keras.Model([a, b], y)


def batchnorm():
    return keras.Sequential([
        layers.Conv2D(8, 3, input_shape=(16, 16, 3)),
        layers.BatchNormalization(),
        layers.GlobalAveragePooling2D(),
        layers.Dense(10, activation="softmax"),
    ])


def multi_io():
    img = keras.Input(shape=(16, 16, 3))
    meta = keras.Input(shape=(4,))
    h = layers.Conv2D(8, 3, activation="relu")(img)
    h = layers.AveragePooling2D(2)(h)
    h = layers.Flatten()(h)
    m = layers.Dense(8, activation="relu")(meta)
    c = layers.Concatenate()([h, m])
    c = layers.Dropout(0.5)(c)
    out1 = layers.Dense(3, activation="softmax")(c)
    r = layers.Dense(16)(c)
    r = layers.Reshape((4, 4))(r)
    out2 = layers.Activation("sigmoid")(r)
    return keras.Model([img, meta], [out1, out2])


def long_names():
    # Long names wrap the name column; a 5-way Concatenate wraps 'Connected to'.
    x = keras.Input(shape=(8,), name="input_features_with_a_rather_long_name")
    branches = [
        layers.Dense(4, activation="relu",
                     name="branch_%d_dense_layer_with_a_very_long_name" % i)(x)
        for i in range(5)
    ]
    c = layers.Concatenate(name="concatenate_all_five_branches_of_the_model")(branches)
    y = layers.Dense(2, name="final_output_dense_layer_with_a_long_name")(c)
    return keras.Model(x, y, name="model_with_long_layer_names")


MODELS = [
    seed_sequential,
    seed_functional,
    seed_cnn,
    inception_block,
    shared,
    shared_multiple,
    batchnorm,
    multi_io,
    long_names,
]


def main():
    os.makedirs(OUT, exist_ok=True)
    for build in MODELS:
        keras.backend.clear_session()  # auto names restart, as nncc's per graph
        model = build()
        lines = []
        model.summary(print_fn=lambda line, *args, **kw: lines.append(line))
        path = os.path.join(OUT, "summary_%s.txt" % build.__name__)
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write("\n".join(lines) + "\n")
        print("wrote", os.path.relpath(path), file=sys.stderr)
    print("keras", keras.__version__, file=sys.stderr)


if __name__ == "__main__":
    main()
