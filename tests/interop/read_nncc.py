#!/usr/bin/env python3
"""read_nncc.py — reads a safetensors file that nncc wrote, with the Python
standard library and NumPy only (no nncc, no safetensors package), and
checks one tensor.

    read_nncc.py FILE TENSOR [V0 V1 ...]

Prints the tensor's shape and values; with values, exits 1 unless the
tensor holds exactly those float32 values (in C order).  Also checks the
container (8-byte little-endian header length, JSON header, F32 entries
tiling the data) and, when __metadata__ has a "checksum", that it is the
SHA-256 of the data section.
"""
import hashlib
import json
import struct
import sys

import numpy as np


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    path, name, want = argv[1], argv[2], argv[3:]
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    meta = header.pop("__metadata__", {})
    end = 0
    for key, e in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
        assert e["dtype"] == "F32", (key, e["dtype"])
        b, en = e["data_offsets"]
        assert b == end and en - b == 4 * int(np.prod(e["shape"], dtype=np.int64)), key
        end = en
    assert end == len(data), "the tensors do not tile the data section"
    if "checksum" in meta:
        assert hashlib.sha256(data).hexdigest() == meta["checksum"], "checksum mismatch"
    e = header[name]
    b, en = e["data_offsets"]
    t = np.frombuffer(data[b:en], dtype="<f4").reshape(e["shape"])
    print("%s %s %s" % (name, list(t.shape), " ".join("%.9g" % v for v in t.ravel())))
    if want:
        w = np.array([float(v) for v in want], dtype=np.float32)
        if w.size != t.size or not np.array_equal(w, t.ravel()):
            print("mismatch: expected %s" % " ".join(want), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
