#!/usr/bin/env python3
"""Writes the zip archives of tests/keras/test_keras_zip.c with Python's
zipfile (the module Keras reads and writes .keras files with).

Deterministic: every member gets the same fixed date.  Run from anywhere:
    python3 tests/keras/make_zip_cases.py
and commit tests/keras/zipcases/.  The C test asserts the contents written
here, so change both together.
"""
import os
import zipfile

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "zipcases")
DATE = (2020, 1, 1, 0, 0, 0)


def path(name):
    return os.path.join(HERE, name)


def write(name, members, compression=zipfile.ZIP_DEFLATED):
    """members: a list of (member name, bytes)."""
    with zipfile.ZipFile(path(name), "w") as z:
        for member, data in members:
            info = zipfile.ZipInfo(member, DATE)
            info.compress_type = compression
            z.writestr(info, data)


def patch(src, dst, old, new):
    raw = open(path(src), "rb").read()
    assert raw.count(old) >= 1, (src, old)
    open(path(dst), "wb").write(raw.replace(old, new))


def main():
    os.makedirs(HERE, exist_ok=True)
    config = b'{"class_name": "Sequential", "config": {}}'
    meta = b'{"keras_version": "3.3.3", "date_saved": "2024-01-01@00:00:00"}'
    weights = bytes(range(256)) * 8
    # A .keras archive as Keras 3 writes it (deflated), and one stored.
    write("model.keras", [("metadata.json", meta), ("config.json", config),
                          ("model.weights.h5", weights)])
    write("stored.keras", [("config.json", config), ("empty", b"")], zipfile.ZIP_STORED)
    # Hostile names.
    write("traversal.keras", [("config.json", config), ("../evil.json", b"x")])
    write("absolute.keras", [("config.json", config), ("/etc/evil", b"x")])
    write("deep_traversal.keras", [("config.json", config), ("a/../../evil", b"x")])
    # zipfile turns '\\' into '/' only on Windows: here it stays.
    write("backslash.keras", [("config.json", config), ("a\\evil", b"x")])
    with zipfile.ZipFile(path("duplicate.keras"), "w") as z:
        z.writestr(zipfile.ZipInfo("config.json", DATE), config)
        z.writestr(zipfile.ZipInfo("config.json", DATE), b"{}")  # zipfile warns, writes it
    # A member whose name holds a NUL (patched: zipfile cuts names at NUL).
    write("nul_name.keras", [("config.json", config), ("evilXjson", b"x")])
    patch("nul_name.keras", "nul_name.keras", b"evilXjson", b"evil\x00json")
    # A declared size larger than the data: the stored member's size fields
    # (local header and central directory) patched from 42 to 4000.
    write("big_size.keras", [("config.json", config)], zipfile.ZIP_STORED)
    n = len(config).to_bytes(4, "little")
    patch("big_size.keras", "big_size.keras", n + n, n + (4000).to_bytes(4, "little"))
    # The same, deflated: 42 -> 100 (within deflate's ratio: it must inflate
    # and come up short).
    write("short_deflate.keras", [("config.json", config)])
    raw = open(path("short_deflate.keras"), "rb").read()
    comp = zipfile.ZipFile(path("short_deflate.keras")).infolist()[0].compress_size
    old = comp.to_bytes(4, "little") + n
    assert raw.count(old) == 2
    open(path("short_deflate.keras"), "wb").write(
        raw.replace(old, comp.to_bytes(4, "little") + (100).to_bytes(4, "little")))
    # An encrypted member: zipfile cannot encrypt, so the "encrypted" flag
    # (bit 0 of the general purpose flags) is set in the local header and
    # the central directory of a stored archive.
    write("encrypted.keras", [("config.json", config)], zipfile.ZIP_STORED)
    raw = bytearray(open(path("encrypted.keras"), "rb").read())
    local, central = raw.index(b"PK\x03\x04"), raw.index(b"PK\x01\x02")
    raw[local + 6] |= 1
    raw[central + 8] |= 1
    open(path("encrypted.keras"), "wb").write(bytes(raw))
    # Truncated: the deflated archive cut in the middle (no central directory).
    raw = open(path("model.keras"), "rb").read()
    open(path("truncated.keras"), "wb").write(raw[: len(raw) // 2])
    # Corrupt data: one byte of the deflated weights flipped (CRC error).
    bad = bytearray(raw)
    at = raw.index(b"model.weights.h5") + len("model.weights.h5") + 40
    bad[at] ^= 0xFF
    open(path("corrupt.keras"), "wb").write(bytes(bad))
    # An unsupported compression method (bzip2).
    write("bzip2.keras", [("config.json", config)], zipfile.ZIP_BZIP2)
    # Not a zip at all.
    open(path("not_zip.keras"), "wb").write(b"\x89HDF\r\n\x1a\n not a zip archive")


if __name__ == "__main__":
    main()
