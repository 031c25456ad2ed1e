#!/usr/bin/env python3
"""Writes the HDF5 test files of tests/keras/test_keras_h5.c with real h5py.

Each file is tiny and deterministic (h5py's default, earliest file format;
no timestamps are stored).  Run from anywhere:
    python3 tests/keras/make_h5_cases.py
and commit tests/keras/h5cases/.  The C test asserts the exact values
written here, so change both together.
"""
import os

import h5py
import numpy as np

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "h5cases")


def path(name):
    return os.path.join(HERE, name)


def forms():
    """Every attribute and dataset form Keras' h5 files use."""
    with h5py.File(path("forms.h5"), "w", track_order=False) as f:
        # Attributes on the root, as Keras writes them.
        f.attrs["vlen_str"] = '{"class_name": "Sequential"}'    # h5py str: vlen UTF-8
        f.attrs["utf8_str"] = "caf\u00e9 \u2713"                # non-ASCII
        f.attrs["fixed_str"] = np.bytes_("2.15.0")              # fixed-length ASCII
        f.attrs["bytes_str"] = b"tensorflow"                    # Python bytes
        f.attrs["one_elem"] = np.array([b"solo"])               # a one-element array
        f.attrs["vlen_list"] = ["dense", "dense_1", "kernel:0"]  # array of vlen str
        f.attrs["fixed_list"] = np.array([b"a", b"bb", b"ccc"])  # array of fixed str (|S3)
        f.attrs["empty_list"] = []                              # empty float64 array
        f.attrs["number"] = np.float64(1.5)                     # not a string
        f.attrs["numbers"] = np.array([1, 2, 3], dtype=np.int64)
        f.attrs["repr_str"] = "['iter:0', 'dense/kernel/m:0']"  # Keras 3's one-string list
        f.attrs["empty_str"] = ""
        # Nested groups and datasets with ':' in their names.
        g = f.create_group("model_weights/dense/dense")
        g.attrs["weight_names"] = np.array([b"dense/kernel:0", b"dense/bias:0"])
        g.create_dataset("kernel:0", data=np.arange(6, dtype=np.float32).reshape(2, 3) / 4)
        g.create_dataset("bias:0", data=np.array([-1.0, 0.5, 2.0], dtype=np.float32))
        f.create_group("empty_group")
        # Numeric datasets of each type and ranks 0..4.
        d = f.create_group("data")
        d.create_dataset("f32_r0", data=np.float32(3.25))
        d.create_dataset("f64_r1", data=np.array([0.1, -2.5, 1e10]))
        d.create_dataset("i64_r2", data=np.array([[1, -2], [3, 4]], dtype=np.int64))
        d.create_dataset("i32_r3", data=np.arange(8, dtype=np.int32).reshape(2, 2, 2) - 4)
        d.create_dataset("u8_r4", data=np.arange(16, dtype=np.uint8).reshape(1, 2, 2, 4) * 16)
        d.create_dataset("f16_r1", data=np.array([0.5, -1.0, 65504.0], dtype=np.float16))
        d.create_dataset("i64_scalar", data=np.int64(1234567890123))
        d.create_dataset("f64_scalar", data=np.float64(0.001))
        d.create_dataset("f32_int", data=np.float32(42.0))
        d.create_dataset("f32_frac", data=np.float32(42.5))
        d.create_dataset("f32_one", data=np.array([7.0], dtype=np.float32))
        d.create_dataset("empty", data=np.zeros((0, 3), dtype=np.float32))
        d.create_dataset("chunked", data=np.arange(100, dtype=np.float32), chunks=(10,),
                         compression="gzip")
        # Wrong types.
        d.create_dataset("string", data="not numbers")
        d.create_dataset("strings", data=np.array([b"x", b"y"]))
        d.create_dataset("compound", data=np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")]))
        d.create_dataset("bool", data=np.array([True, False]))
        d.create_dataset("ref", data=np.array([f.ref]), dtype=h5py.ref_dtype)
        d.create_dataset("rank9", data=np.zeros((1,) * 9, dtype=np.float32))
        # Links Keras never writes.
        f["soft"] = h5py.SoftLink("/data")
        f["external"] = h5py.ExternalLink("/dev/zero", "/x")


def keras_like():
    """A small file shaped as Keras 2 saves a model (also a fuzzing seed)."""
    with h5py.File(path("keras_like.h5"), "w") as f:
        f.attrs["keras_version"] = "2.15.0"
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = '{"class_name": "Sequential", "config": {"layers": []}}'
        mw = f.create_group("model_weights")
        mw.attrs["layer_names"] = np.array([b"dense"])
        mw.attrs["backend"] = "tensorflow"
        g = mw.create_group("dense/dense")
        mw["dense"].attrs["weight_names"] = np.array([b"dense/kernel:0", b"dense/bias:0"])
        g.create_dataset("kernel:0", data=np.arange(6, dtype=np.float32).reshape(3, 2))
        g.create_dataset("bias:0", data=np.zeros(2, dtype=np.float32))
        ow = f.create_group("optimizer_weights")
        ow.attrs["weight_names"] = np.array([b"iteration:0"])
        ow.create_dataset("iteration:0", data=np.int64(3))


def hostile():
    """Files that must fail cleanly."""
    # A huge dataset that stores nothing (never written: fill value) is fine
    # to describe; a huge *allocated* one is patched below.
    with h5py.File(path("huge_declared.h5"), "w") as f:
        f.create_dataset("big", shape=(1 << 20, 1 << 12), dtype=np.float32)  # 2^32 elements
        f.create_dataset("big_chunked", shape=(1 << 30,), dtype=np.float32, chunks=(1 << 16,))
        f.create_dataset("small", data=np.ones(4, dtype=np.float32))
    # A contiguous dataset whose dimensions are patched from 4 to 2^24 (the
    # data, 16 bytes, stays): it then claims 64 MiB of a small file.
    with h5py.File(path("patched_dims.h5"), "w") as f:
        f.create_dataset("x", data=np.arange(4, dtype=np.float32))
    raw = bytearray(open(path("patched_dims.h5"), "rb").read())
    # The dataspace message (version 1, rank 1, flags 1: maximum dimensions
    # present, 4 reserved bytes) holds the dimension then its maximum, both
    # 8-byte little-endian 4: the file's only such sequence.
    four = (4).to_bytes(8, "little")
    at = raw.find(b"\x01\x01\x01\x00\x00\x00\x00\x00" + four + four)
    assert at >= 0, "dataspace message not found"
    big = (1 << 24).to_bytes(8, "little")
    raw[at + 8:at + 24] = big + big
    # libhdf5 itself refuses that (the layout message still says 16 bytes);
    # the layout message (version 3, class 1: contiguous, 8-byte address,
    # 8-byte size 16) is patched too, to 64 MiB, in a copy.
    open(path("patched_dims.h5"), "wb").write(bytes(raw))
    sixteen = (16).to_bytes(8, "little")
    at = raw.find(b"\x03\x01")
    while at >= 0 and raw[at + 10:at + 18] != sixteen:
        at = raw.find(b"\x03\x01", at + 1)
    assert at >= 0, "layout message not found"
    raw[at + 10:at + 18] = (64 << 20).to_bytes(8, "little")
    open(path("patched_size.h5"), "wb").write(bytes(raw))
    # Deep nesting and a very long attribute.
    with h5py.File(path("deep.h5"), "w") as f:
        f.create_group("/".join(["g"] * 50))
        f.create_dataset("/".join(["g"] * 50) + "/x", data=np.float32(1))
        f.attrs["long"] = "x" * 70000
        f.attrs["many"] = ["s"] * 300
    # Truncated: a valid file cut in the middle, and at its superblock.
    with h5py.File(path("whole.h5"), "w") as f:
        f.attrs["model_config"] = "{}" * 200
        f.create_dataset("w", data=np.arange(1000, dtype=np.float32))
    raw = open(path("whole.h5"), "rb").read()
    open(path("truncated.h5"), "wb").write(raw[:len(raw) // 2])
    open(path("truncated_super.h5"), "wb").write(raw[:40])
    os.remove(path("whole.h5"))
    with open(path("not_hdf5.h5"), "wb") as f:
        f.write(b"PK\x03\x04 this is not an HDF5 file\n")


if __name__ == "__main__":
    os.makedirs(HERE, exist_ok=True)
    forms()
    keras_like()
    hostile()
