#!/usr/bin/env python3
"""check_formats.py -- verify, with h5py only, the format facts tests/keras/README.md states.

    python3 tests/keras/check_formats.py        (needs h5py and numpy, no Keras)

For every fixture saved in both formats by one Keras (<name>.k<N>.h5 and .k<N>.keras, same
model state) it checks:
  * the .h5's model_weights, read layer by layer in `layer_names` order and each layer's
    `weight_names` order, equal the .keras archive's layers/<group>/vars/<i>, where <group>
    is the snake_case of the layer's class numbered in layer order (dense, dense_1, ...),
    whatever the layer's name;
  * the .h5's optimizer_weights, in the `weight_names` order, equal the .keras archive's
    optimizer/vars/<i> in index order; the first is the iteration count (int64, equal to
    the JSON's "iterations"); Keras 3 stores the learning rate second (float32), Keras 2
    does not store it at all (only in the config);
  * the slots are interleaved per trainable variable in the documented order, recognised
    by their signs: Adam (m, v) -- v >= 0 while some m < 0; RMSprop velocity >= 0;
    Adagrad accumulator >= its initial value 0.1; SGD momentum has negative entries.
Prints one line per file pair and exits 1 on the first fact that does not hold.
"""

import io
import json
import os
import re
import sys
import zipfile

import h5py
import numpy as np

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def snake(name):
    """Keras' to_snake_case as used for the .keras group names (Dense -> dense,
    BatchNormalization -> batch_normalization, InputLayer -> input_layer)."""
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def names(attr):
    return [n.decode() if isinstance(n, bytes) else str(n) for n in attr]


def check_pair(stem, major):
    h5 = h5py.File(os.path.join(FIX, stem + ".h5"), "r")
    z = zipfile.ZipFile(os.path.join(FIX, stem + ".keras"))
    kw = h5py.File(io.BytesIO(z.read("model.weights.h5")), "r")
    meta = json.load(open(os.path.join(FIX, stem + ".keras.json")))

    # Layer weights.  The group names come from the classes in config.json's layer order.
    cfg = json.loads(z.read("config.json"))
    classes = [l["class_name"] for l in cfg["config"]["layers"]]
    if cfg["class_name"] == "Sequential":
        classes = [c for c in classes if c != "InputLayer"]  # not a tracked layer there
    used, groups = {}, []
    for c in classes:
        base = snake(c)
        groups.append(base if base not in used else "%s_%d" % (base, used[base]))
        used[base] = used.get(base, 0) + 1
    mw = h5["model_weights"]
    layer_names = names(mw.attrs["layer_names"])
    nlayer = 0
    for lname, group in zip(layer_names, groups):
        wn = names(mw[lname].attrs["weight_names"])
        for i, w in enumerate(wn):
            a = np.asarray(mw[lname][w])
            b = np.asarray(kw["layers/%s/vars/%d" % (group, i)])
            if a.shape != b.shape or not np.array_equal(a, b):
                fail("%s: %s/%s != layers/%s/vars/%d" % (stem, lname, w, group, i))
            nlayer += 1
    if len(layer_names) != len(groups):
        fail("%s: %d layer_names, %d layers in config.json" %
             (stem, len(layer_names), len(groups)))

    # Optimizer state.
    og = h5["optimizer_weights"]
    onames = names(og.attrs["weight_names"])
    kv = kw["optimizer/vars"]
    if len(kv) != len(onames):
        fail("%s: %d optimizer weights in .h5, %d in .keras" % (stem, len(onames), len(kv)))
    vals = []
    for i, n in enumerate(onames):
        a, b = np.asarray(og[n]), np.asarray(kv[str(i)])
        if a.dtype != b.dtype or a.shape != b.shape or not np.array_equal(a, b):
            fail("%s: optimizer %s != optimizer/vars/%d" % (stem, n, i))
        vals.append(a)
    if vals[0].dtype != np.int64 or vals[0].shape != () or int(vals[0]) != meta["iterations"]:
        fail("%s: first optimizer weight %s is not the iteration count" % (stem, onames[0]))
    nslot_start = 1
    if major >= 3:
        if vals[1].dtype != np.float32 or float(vals[1]) != np.float32(meta["learning_rate"]):
            fail("%s: second optimizer weight %s is not the learning rate" % (stem, onames[1]))
        nslot_start = 2
    slots = vals[nslot_start:]
    opt = meta["compile"]["optimizer"]
    per = 2 if opt == "Adam" else 1
    if len(slots) != per * nlayer_trainable(h5, layer_names):
        fail("%s: %d slots for %s" % (stem, len(slots), opt))
    for j in range(0, len(slots), per):
        if opt == "Adam":
            m, v = slots[j], slots[j + 1]
            if m.shape != v.shape or (v < 0).any():
                fail("%s: Adam slots %d,%d are not (m, v)" % (stem, j, j + 1))
        elif opt == "RMSprop" and (slots[j] < 0).any():
            fail("%s: RMSprop slot %d negative" % (stem, j))
        elif opt == "Adagrad" and (slots[j] < np.float32(0.1)).any():
            fail("%s: Adagrad accumulator %d below 0.1" % (stem, j))
    if opt == "Adam" and not any((slots[j] < 0).any() for j in range(0, len(slots), 2)):
        fail("%s: no negative m at all" % stem)
    if opt == "SGD" and not any((s < 0).any() for s in slots):
        fail("%s: no negative momentum" % stem)
    print("ok %-16s %2d layer weights, optimizer %s: %s" %
          (stem, nlayer, opt, ", ".join(onames[:nslot_start + per])
           + (", ..." if len(onames) > nslot_start + per else "")))


def nlayer_trainable(h5, layer_names):
    """Trainable weights: all layer weights except BatchNormalization's moving stats."""
    n = 0
    for lname in layer_names:
        for w in names(h5["model_weights"][lname].attrs["weight_names"]):
            if "moving_" not in w:
                n += 1
    return n


def main():
    stems = sorted(f[:-3] for f in os.listdir(FIX) if re.search(r"\.k[23]\.h5$", f))
    if not stems:
        fail("no fixtures in %s" % FIX)
    for stem in stems:
        check_pair(stem, int(stem[-1]))
    print("all %d pairs agree" % len(stems))


if __name__ == "__main__":
    main()
