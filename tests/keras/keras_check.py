#!/usr/bin/env python3
"""keras_check.py -- does a model file (e.g. one nncc wrote) load and run in real Keras?

    keras_check.py FILE --x X.npy --expect P.npy [--atol 1e-6] [--keras 2|3]
                   [--fit-y Y.npy [--fit-batch 32] [--expect-iterations N]
                                  [--expect-loss L [--loss-rtol 1e-5]]]

Loads FILE (.keras or .h5) with load_model, predicts on X and compares with P (float32,
same shape as the predictions).  With --fit-y it also checks that the model came back
compiled (prints the optimizer class and the loss) and fits one epoch on (X, Y), batch
--fit-batch, shuffle=False, verbose 0, printing the loss and the optimizer's iteration
count before and after; --expect-iterations N requires the count before the epoch to be N
(the saved state was restored) and after it N + ceil(rows / batch); --expect-loss L
requires the epoch's loss to be L within --loss-rtol (relative).

Which Keras: --keras 2 imports tf_keras, --keras 3 imports keras (and requires 3.x);
without --keras, keras if it is Keras 3, else tf_keras.

Exit codes: 0 all checks pass; 1 a check failed (the message says which); 2 bad usage or
unreadable inputs; 77 the requested Keras is not importable (ctest's SKIP_RETURN_CODE).

Keras 3's legacy-HDF5 loader (seen in 3.15.1) builds the optimizer over
`model._trainable_variables`, which is empty for a Functional/Sequential model: only the
iteration count and learning rate are restored, the slots are dropped and the first fit
fails with "Unknown variable".  For a .h5 file under Keras 3, when that happens, this
script says so and restores the optimizer from the file's optimizer_weights itself
(fix_k3_h5_optimizer, for files in Keras 3's or tf-keras 2's layout), so the check still
proves the file's optimizer state is right.
"""

import argparse
import os
import sys

try:
    import numpy as np
except ImportError:  # no numpy: no Keras either; reported as a skip in main()
    np = None

SKIP = 77


def import_keras(which):
    """(keras module, major) or None when the requested Keras is not importable."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if which == 2:
        try:
            import tf_keras as keras
        except ImportError:
            return None
        return keras, int(keras.__version__.split(".")[0])
    try:
        import keras
        major = int(keras.__version__.split(".")[0])
    except ImportError:
        keras, major = None, 0
    if major >= 3:
        return keras, major
    if which == 3:
        return None
    try:
        import tf_keras as keras
    except ImportError:
        return None
    return keras, int(keras.__version__.split(".")[0])


def fix_k3_h5_optimizer(keras, model, path):
    """Rebuild a Keras 3 model's optimizer from a legacy .h5's optimizer_weights.

    Returns "" when the loaded optimizer was fine (or the file has no optimizer state),
    else a note saying what was done.  The new optimizer is built over
    model.trainable_variables.  A file written by Keras 3 has the same variable paths
    (iteration, learning_rate, slots) and is assigned in its weight_names order after
    checking the names match; a file in tf-keras 2's layout (iteration:0, then the same
    slots in the same order, no learning rate) is assigned by position around the
    learning rate, which keeps the value from the training_config, after checking the
    shapes.  Anything else raises ValueError.
    """
    import h5py
    opt = model.optimizer
    with h5py.File(path, "r") as f:
        if "optimizer_weights" not in f:
            return ""
        g = f["optimizer_weights"]
        names = [n.decode() if isinstance(n, bytes) else str(n)
                 for n in g.attrs["weight_names"]]
        values = [np.asarray(g[n]) for n in names]
    if len(opt.variables) == len(names):
        return ""  # loaded correctly
    new = type(opt).from_config(opt.get_config())
    new.build(model.trainable_variables)
    got = [v.path for v in new.variables]
    if got == names:
        new.set_weights(values)
        how = "by name"
    elif len(got) == len(names) + 1 and names[0].startswith("iteration"):
        values = values[:1] + [np.asarray(new.variables[1])] + values[1:]
        for v, val in zip(new.variables, values):
            if tuple(v.shape) != val.shape:
                raise ValueError("optimizer variable %s has shape %s, the file's value %s"
                                 % (v.path, tuple(v.shape), val.shape))
        new.set_weights(values)
        how = "by position from the tf-keras 2 layout"
    else:
        raise ValueError("the optimizer's variables %s do not match the file's %s"
                         % (got, names))
    model.optimizer = new
    return "restored %d optimizer variables %s" % (len(names), how)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("file")
    ap.add_argument("--x", required=True, help="input rows, .npy")
    ap.add_argument("--expect", required=True, help="expected predictions, .npy")
    ap.add_argument("--atol", type=float, default=1e-6)
    ap.add_argument("--keras", type=int, choices=(2, 3))
    ap.add_argument("--fit-y", help="labels for one epoch of fit, .npy")
    ap.add_argument("--fit-batch", type=int, default=32)
    ap.add_argument("--expect-iterations", type=int)
    ap.add_argument("--expect-loss", type=float,
                    help="the epoch's loss must match this (nncc's) to --loss-rtol")
    ap.add_argument("--loss-rtol", type=float, default=1e-5)
    args = ap.parse_args()

    got = import_keras(args.keras) if np is not None else None
    if got is None:
        print("keras_check: SKIP: Keras %s is not importable" % (args.keras or "(any)"))
        return SKIP
    keras, major = got
    print("keras_check: Keras %s (%s)" % (keras.__version__, keras.__name__))

    try:
        x = np.load(args.x)
        expect = np.load(args.expect)
        y = np.load(args.fit_y) if args.fit_y else None
    except (OSError, ValueError) as e:
        print("keras_check: cannot read the inputs: %s" % e)
        return 2

    try:
        model = keras.models.load_model(args.file)
    except Exception as e:  # any load failure is the finding, not a crash of the check
        print("keras_check: FAIL: load_model(%s): %s: %s" % (args.file, type(e).__name__, e))
        return 1

    pred = model.predict(x, verbose=0)
    if pred.shape != expect.shape:
        print("keras_check: FAIL: predictions shape %s, expected %s" %
              (pred.shape, expect.shape))
        return 1
    diff = float(np.max(np.abs(pred.astype(np.float64) - expect.astype(np.float64))))
    print("keras_check: predictions %s, max abs diff %.3g (atol %.3g)" %
          (pred.shape, diff, args.atol))
    if not diff <= args.atol:  # also catches NaN
        print("keras_check: FAIL: predictions differ by %.9g > %.3g" % (diff, args.atol))
        return 1

    if y is None:
        print("keras_check: OK")
        return 0

    opt = getattr(model, "optimizer", None)
    loss = getattr(model, "loss", None)
    if opt is None or loss is None:
        print("keras_check: FAIL: the model was not saved compiled (optimizer %r, loss %r)" %
              (opt, loss))
        return 1
    print("keras_check: compiled: optimizer %s, loss %s, learning_rate %r" %
          (type(opt).__name__, loss, float(np.asarray(opt.learning_rate))))
    if major >= 3 and args.file.endswith(".h5"):
        try:
            note = fix_k3_h5_optimizer(keras, model, args.file)
        except (ValueError, KeyError, OSError) as e:
            print("keras_check: FAIL: optimizer_weights: %s" % e)
            return 1
        if note:
            print("keras_check: NOTE: Keras %s's .h5 loader dropped the optimizer slots; "
                  "%s from the file's optimizer_weights" % (keras.__version__, note))
            opt = model.optimizer
    before = int(np.asarray(opt.iterations))
    try:
        h = model.fit(x, y, batch_size=args.fit_batch, epochs=1, shuffle=False, verbose=0)
    except Exception as e:
        print("keras_check: FAIL: fit: %s: %s" % (type(e).__name__, e))
        return 1
    after = int(np.asarray(model.optimizer.iterations))
    hist = {k: float(v[0]) for k, v in h.history.items()}
    print("keras_check: fit 1 epoch: %s; iterations %d -> %d" % (hist, before, after))
    if not np.isfinite(hist.get("loss", float("nan"))):
        print("keras_check: FAIL: the epoch's loss is not finite")
        return 1
    if args.expect_iterations is not None:
        steps = -(-x.shape[0] // args.fit_batch)
        if before != args.expect_iterations or after != before + steps:
            print("keras_check: FAIL: iterations %d -> %d, expected %d -> %d" %
                  (before, after, args.expect_iterations, args.expect_iterations + steps))
            return 1
    if args.expect_loss is not None:
        loss = hist.get("loss", float("nan"))
        if not abs(loss - args.expect_loss) <= args.loss_rtol * abs(args.expect_loss):
            print("keras_check: FAIL: the epoch's loss %.9g differs from the expected %.9g "
                  "(rtol %.1g)" % (loss, args.expect_loss, args.loss_rtol))
            return 1
        print("keras_check: the epoch's loss %.9g matches %.9g" % (loss, args.expect_loss))
    print("keras_check: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
