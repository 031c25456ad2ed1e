"""make_cases.py — writes the small ONNX models tests/onnx/test_onnx.c imports.

Run:  python3 tests/onnx/make_cases.py     (needs numpy, onnx and onnxruntime;
      the output is committed, nothing in CI runs this)

Each case is tests/onnx/cases/NAME.onnx with NAME.in.npy (its input) and
NAME.out.npy (ONNX Runtime's output): they pin what the
importer must reproduce exactly — a Flatten after a convolution in ONNX's
element order, with and without a Gemm after it, a residual block, a model
with a dynamic non-batch dimension, external data (inside and outside the
model's folder), and an unsupported operator.  Deterministic (seeded).
"""
import os
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "cases")
rng = np.random.default_rng(1234)


def init(name, shape, scale=0.5):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def run(model, feeds):
    """ONNX Runtime's output (onnx.reference's BatchNormalization disagrees
    with the operator's definition in onnx 1.23; ORT follows it)."""
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0]


def save(name, graph, x, opset=13):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="nncc-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = os.path.join(OUT, name + ".onnx")
    onnx.save(model, path)
    if x is not None:
        y = run(model, {graph.input[0].name: x})
        np.save(os.path.join(OUT, name + ".in.npy"), x)
        np.save(os.path.join(OUT, name + ".out.npy"), y.astype(np.float32))
    return model


def conv_flatten(name, with_gemm):
    """Conv (3 → 4 channels, pads) → Relu → MaxPool → Flatten [→ Gemm]."""
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
        helper.make_node("Flatten", ["p"], ["f" if with_gemm else "y"], axis=1, name="flatten"),
    ]
    inits = [init("w", (4, 3, 3, 3)), init("b", (4,))]
    if with_gemm:
        nodes.append(helper.make_node("Gemm", ["f", "g", "gb"], ["y"], transB=1, name="dense"))
        inits += [init("g", (5, 4 * 3 * 3)), init("gb", (5,))]
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])], inits)
    save(name, graph, rng.standard_normal((2, 3, 6, 6)).astype(np.float32))


def residual():
    """Conv → BN → Relu → Conv → BN, plus the input (Add), Relu, GlobalAveragePool, Flatten, Gemm, Softmax."""
    c = 4
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("BatchNormalization", ["a", "s1", "b1", "m1", "v1"], ["bn1"], name="bn1"),
        helper.make_node("Relu", ["bn1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["a2"], pads=[1, 1, 1, 1], name="conv2"),
        helper.make_node("BatchNormalization", ["a2", "s2", "b2", "m2", "v2"], ["bn2"], name="bn2"),
        helper.make_node("Add", ["bn2", "x"], ["sum"], name="add"),
        helper.make_node("Relu", ["sum"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc", "fcb"], ["logits"], transB=1, name="fc"),
        helper.make_node("Softmax", ["logits"], ["y"], axis=-1, name="softmax"),
    ]
    inits = [init("w1", (c, c, 3, 3)), init("w2", (c, c, 3, 3)), init("fc", (3, c)), init("fcb", (3,))]
    for k in (1, 2):
        inits += [init(f"s{k}", (c,)), init(f"b{k}", (c,)), init(f"m{k}", (c,), 0.1),
                  numpy_helper.from_array(rng.uniform(0.5, 1.5, c).astype(np.float32), f"v{k}")]
    graph = helper.make_graph(
        nodes, "residual",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", c, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])], inits)
    save("residual", graph, rng.standard_normal((3, c, 5, 5)).astype(np.float32))


def whole():
    """Static shapes and a Reshape mixing axis 0: imported whole."""
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["r"], name="reshape"),
         helper.make_node("Relu", ["r"], ["y"], name="relu")], "whole",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 2, 3])],
        [numpy_helper.from_array(np.array([4, 2, 3], dtype=np.int64), "shape")])
    save("whole", graph, rng.standard_normal((2, 3, 4)).astype(np.float32))


def dynamic_dims():
    """A Relu whose input's second dimension is dynamic ("len")."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")], "dynamic",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "len"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])])
    save("dynamic", graph, None)


def unsupported():
    """A Tile node (not among nncc's operators)."""
    graph = helper.make_graph(
        [helper.make_node("Tile", ["x", "reps"], ["y"], name="tile_it")], "unsupported",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
        [numpy_helper.from_array(np.array([1, 2], dtype=np.int64), "reps")])
    save("unsupported", graph, None)


def external(name, location):
    """Gemm with its weight in an external file at `location`."""
    w = init("w", (4, 3))
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w"], ["y"], name="dense")], name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    x = rng.standard_normal((2, 4)).astype(np.float32)
    y = run(model, {"x": x})
    # Written by hand: onnx.save refuses a location outside the folder.
    raw = numpy_helper.to_array(model.graph.initializer[0]).tobytes()
    t = model.graph.initializer[0]
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", str(len(raw)))):
        e = t.external_data.add()
        e.key, e.value = k, v
    with open(os.path.join(OUT, name + ".onnx"), "wb") as f:
        f.write(model.SerializeToString())
    if ".." not in location:
        with open(os.path.join(OUT, location), "wb") as f:
            f.write(raw)
        np.save(os.path.join(OUT, name + ".in.npy"), x)
        np.save(os.path.join(OUT, name + ".out.npy"), y.astype(np.float32))


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    conv_flatten("conv_flatten", with_gemm=False)
    conv_flatten("conv_flatten_gemm", with_gemm=True)
    residual()
    dynamic_dims()
    whole()
    unsupported()
    external("external", "external.weights")
    external("external_escape", "../../escape.weights")
    print("wrote", sorted(os.listdir(OUT)))
