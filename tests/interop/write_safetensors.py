#!/usr/bin/env python3
"""write_safetensors.py — writes a safetensors file as another tool would
(Python standard library and NumPy only), for nncc_load_weights to read.

    write_safetensors.py OUT

Tensors (float32, Keras layouts) of a Dense(3) layer named "dense" on 4
inputs: dense/kernel (4, 3) = arange(12) * 0.5 - 1, dense/bias (3,) =
[1, 2, 3].  The header lists the bias first and has no padding rule of
nncc's: only the format's own rules hold.
"""
import json
import struct
import sys

import numpy as np


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    kernel = (np.arange(12, dtype=np.float32) * 0.5 - 1).reshape(4, 3)
    bias = np.array([1, 2, 3], dtype=np.float32)
    data, header = b"", {"__metadata__": {"format": "np"}}
    for name, t in (("dense/bias", bias), ("dense/kernel", kernel)):
        raw = t.astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape),
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header).encode()
    with open(argv[1], "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
