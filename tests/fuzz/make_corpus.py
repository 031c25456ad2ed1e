#!/usr/bin/env python3
"""make_corpus.py — writes the fuzz seed corpora tests/fuzz/corpus/{idx,npy,csv}/.

A handful of small valid files and files broken in one way each, so that
libFuzzer starts from every branch of the loaders' headers.  The output is
committed; rerun this (python3 with numpy) only to change the seeds:
    python3 tests/fuzz/make_corpus.py
It rewrites the three folders from scratch.  Deterministic: gzip headers carry
no name and mtime 0.
"""
import gzip
import io
import os
import shutil
import struct

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def gz(data):
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as f:
        f.write(data)
    return out.getvalue()


def idx(type_code, dims, payload):
    return bytes([0, 0, type_code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload


def idx_files():
    images = idx(0x08, [2, 3, 3], bytes(range(0, 180, 10)))
    labels = idx(0x08, [2], bytes([3, 7]))
    return {
        "images_2x3x3_ubyte.idx": images,
        "labels_2_ubyte.idx": labels,
        # images followed by labels: the harness splits it into a pair
        "pair_images_labels.idx": images + labels,
        "pair_label_out_of_range.idx": images + idx(0x08, [2], bytes([3, 12])),
        "pair_sample_mismatch.idx": images + idx(0x08, [3], bytes([1, 2, 3])),
        "pair_float_labels.idx": images + idx(0x0D, [2], struct.pack(">2f", 1.0, 2.0)),
        "sbyte_1d.idx": idx(0x09, [4], bytes([0, 127, 128, 255])),
        "short_2x2.idx": idx(0x0B, [2, 2], struct.pack(">4h", -2, -1, 0, 32767)),
        "int_3.idx": idx(0x0C, [3], struct.pack(">3i", -7, 0, 2**31 - 1)),
        "float_2x2.idx": idx(0x0D, [2, 2], struct.pack(">4f", 1.5, -0.0, float("inf"), 3.25)),
        "double_1x2x1.idx": idx(0x0E, [1, 2, 1], struct.pack(">2d", 0.1, -1e300)),
        "rank8.idx": idx(0x08, [1, 1, 1, 1, 1, 1, 1, 2], b"\x01\x02"),
        "images_gzip.idx.gz": gz(images),
        "gzip_truncated.idx.gz": gz(images)[:-6],
        "gzip_trailing_bytes.idx.gz": gz(images + b"\x00"),
        "truncated.idx": images[:-5],
        "trailing_bytes.idx": labels + b"\x09",
        "bad_magic.idx": b"\x01\x00" + images[2:],
        "bad_type.idx": idx(0x0A, [2], b"\x00\x00"),
        "rank0.idx": bytes([0, 0, 0x08, 0]),
        "rank9.idx": idx(0x08, [1] * 9, b"\x00"),
        "zero_dim.idx": idx(0x08, [2, 0, 3], b""),
        "huge_dims.idx": idx(0x0E, [0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF], b""),
        "short_header.idx": bytes([0, 0, 0x08, 3, 0, 0, 0, 2]),
    }


def npy(arr, **kw):
    out = io.BytesIO()
    np.lib.format.write_array(out, arr, allow_pickle=False, **kw)
    return out.getvalue()


def npy_raw(major, dict_text, payload):
    """A .npy file with a hand-written header dict (padded like NumPy's)."""
    pre = 10 if major == 1 else 12
    text = dict_text.encode("latin1")
    pad = (64 - (pre + len(text) + 1) % 64) % 64
    header = text + b" " * pad + b"\n"
    size = struct.pack("<H", len(header)) if major == 1 else struct.pack("<I", len(header))
    return b"\x93NUMPY" + bytes([major, 0]) + size + header + payload


def npy_files():
    f4 = npy(np.arange(6, dtype="<f4").reshape(2, 3) / 4)
    files = {
        "f4_2x3.npy": f4,
        "f8_4.npy": npy(np.array([0.5, -1.0, 1e300, -0.0], dtype="<f8")),
        "u1_2x2x2.npy": npy(np.arange(8, dtype="u1").reshape(2, 2, 2) * 30),
        "i8_3.npy": npy(np.array([-(2**63), 0, 2**62], dtype="<i8")),
        "f4_scalar.npy": npy(np.array(2.5, dtype="<f4")),
        "f4_v2.npy": npy(np.array([1.0, 2.0], dtype="<f4"), version=(2, 0)),
        "f4_fortran.npy": npy(np.asfortranarray(np.ones((2, 2), dtype="<f4"))),
        "f4_bigendian.npy": npy(np.array([1.0, 2.0], dtype=">f4")),
        "i4_unsupported.npy": npy(np.array([1, 2], dtype="<i4")),
        "double_quotes.npy": npy_raw(
            1, '{"shape": (2,), "fortran_order": False, "descr": "<u1"}', b"\x05\x06"),
        "python2_long.npy": npy_raw(
            1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1L, 2L), }", b"\x00" * 8),
        "v3.npy": npy_raw(3, "{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }", b"abc"),
        "bad_magic.npy": b"\x93NUMPZ" + f4[6:],
        "bad_version.npy": f4[:6] + b"\x04\x00" + f4[8:],
        "truncated_data.npy": f4[:-3],
        "trailing_bytes.npy": f4 + b"\x00\x00\x00\x00",
        "header_past_end.npy": f4[:8] + b"\xff\x7f" + f4[10:40],
        "unknown_key.npy": npy_raw(
            1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", b"\x00" * 4),
        "duplicate_key.npy": npy_raw(
            1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}",
            b"\x00" * 4),
        "int_not_tuple.npy": npy_raw(
            1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3)}", b"\x00" * 12),
        "zero_dim.npy": npy_raw(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3)}", b""),
        "overflow_dim.npy": npy_raw(
            1, "{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904, 4)}", b""),
        "rank9.npy": npy_raw(
            1, "{'descr': '|u1', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1)}", b"\x00"),
        "short.npy": b"\x93NUMPY\x01",
    }
    return files


def csv_files():
    return {
        "plain.csv": b"1,2,3\n4,5,6\n",
        "header.csv": b"a,b\n0.5,-1e3\n2,3\n",
        "crlf.csv": b"1.5,2\r\n3,4\r\n\r\n",
        "no_final_newline.csv": b"7, 8 ,\t9\n10,11,12",
        "ragged.csv": b"1,2,3\n4,5\n",
        "empty_field.csv": b"1,,3\n",
        "nan_inf.csv": b"1,nan\ninf,2\n",
        "overflow.csv": b"1e39,1e-50\n",
        "blank_line_inside.csv": b"1,2\n\n3,4\n",
        "bom.csv": b"\xef\xbb\xbfx,y\n1,2\n",
        "semicolon.csv": b"1;2\n3;4\n",
        "tabs.csv": b"h1\th2\n1\t2\n",
        "spaces.csv": b"1 2 3\n4 5 6\n",
        "hex_and_signs.csv": b"0x1p3,+4,-.5,5.\n",
        "not_a_number.csv": b"1,two\n",
        "quoted.csv": b'"1","2"\n',
        "long_field.csv": b"1" * 256 + b"\n",  # 257+ characters: see regress/csv/
        "header_only.csv": b"a,b,c\n",
        "blank.csv": b"  \n\t\n",
    }


def main():
    for name, files in (("idx", idx_files()), ("npy", npy_files()), ("csv", csv_files())):
        d = os.path.join(CORPUS, name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        for fname, data in files.items():
            with open(os.path.join(d, fname), "wb") as f:
                f.write(data)
        print(f"{d}: {len(files)} files, {sum(map(len, files.values()))} bytes")


if __name__ == "__main__":
    main()
