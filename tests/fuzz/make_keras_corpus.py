#!/usr/bin/env python3
"""Seeds tests/fuzz/corpus/keras/ (the fuzz_keras harness) from the committed
test files of tests/keras/ (made by make_h5_cases.py and make_zip_cases.py).

fuzz_keras reads its input's first byte as the form: even, the rest is an
.h5 file; odd, a .keras archive.  Only small files are taken (libFuzzer
works best on small inputs).  Run: python3 tests/fuzz/make_keras_corpus.py
"""
import io
import os
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
KERAS = os.path.join(HERE, "..", "keras")
OUT = os.path.join(HERE, "corpus", "keras")
H5 = ["keras_like.h5", "huge_declared.h5", "patched_size.h5", "truncated.h5", "not_hdf5.h5"]
ZIP = ["model.keras", "stored.keras", "traversal.keras", "duplicate.keras", "big_size.keras",
       "short_deflate.keras", "encrypted.keras", "truncated.keras"]


def main():
    os.makedirs(OUT, exist_ok=True)
    for name in H5:
        data = open(os.path.join(KERAS, "h5cases", name), "rb").read()
        open(os.path.join(OUT, "h5-" + name), "wb").write(b"\x00" + data)
    for name in ZIP:
        data = open(os.path.join(KERAS, "zipcases", name), "rb").read()
        open(os.path.join(OUT, "zip-" + name), "wb").write(b"\x01" + data)
    # A .keras archive whose weights are a real HDF5 file (stored, so the
    # fuzzer's byte changes reach the HDF5 reader through the zip reader).
    weights = open(os.path.join(KERAS, "h5cases", "keras_like.h5"), "rb").read()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in [("metadata.json", b'{"keras_version": "3.3.3"}'),
                           ("config.json", b'{"class_name": "Sequential", "config": {}}'),
                           ("model.weights.h5", weights)]:
            info = zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0))
            z.writestr(info, data)
    open(os.path.join(OUT, "zip-with-weights.keras"), "wb").write(b"\x01" + buf.getvalue())


if __name__ == "__main__":
    main()
