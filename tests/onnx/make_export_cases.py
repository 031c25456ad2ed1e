#!/usr/bin/env python3
"""Writes tests/onnx/export_cases/: hand-made ONNX models for the export tests
(tests/onnx/test_export.c) that reach IR ops no C API layer makes, in forms the
backend tests do not: nncc imports each, exports it, imports the export back and
compares predictions.

    /usr/bin/python3 tests/onnx/make_export_cases.py   # Debian's python3-onnx is enough

reverse_slice.onnx: x (N, 5, 6) → Slice reversing axis 1 through index 0 (ends
INT64_MIN, step −1: nncc's end −1) and every other column of axis 2 backwards
→ Pad (constant 0.5, asymmetric) → PRelu with a per-column slope → Abs + 1 → Log.
Deterministic: the same bytes each run.  The files are committed.
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "export_cases")


def reverse_slice():
    i64 = lambda name, v: numpy_helper.from_array(np.array(v, dtype=np.int64), name)
    inits = [
        i64("starts", [-1, 5]), i64("ends", [np.iinfo(np.int64).min, -100]),
        i64("axes", [1, 2]), i64("steps", [-1, -2]),
        i64("pads", [0, 1, 0, 0, 0, 2]),
        numpy_helper.from_array(np.array(0.5, dtype=np.float32), "pad_value"),
        numpy_helper.from_array(np.linspace(-0.5, 0.5, 5, dtype=np.float32), "slope"),
        numpy_helper.from_array(np.array([1.0], dtype=np.float32), "one"),
    ]
    nodes = [
        helper.make_node("Slice", ["x", "starts", "ends", "axes", "steps"], ["s"]),
        helper.make_node("Pad", ["s", "pads", "pad_value"], ["p"], mode="constant"),
        helper.make_node("PRelu", ["p", "slope"], ["r"]),
        helper.make_node("Abs", ["r"], ["a"]),
        helper.make_node("Add", ["a", "one"], ["a1"]),
        helper.make_node("Log", ["a1"], ["y"]),
    ]
    g = helper.make_graph(
        nodes, "reverse_slice",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 5, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 6, 5])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="nncc-tests")
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, os.path.join(OUT, "reverse_slice.onnx"))


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    reverse_slice()
