#!/usr/bin/env python3
"""Convert TEXMEX .fvecs/.bvecs/.ivecs to `id<TAB>[v1,v2,...]` lines for COPY (stdlib only).
Usage: vecs2tsv.py FILE [--normalize]"""
import struct
import sys


def rows(path):
    kind = path.rsplit(".", 1)[1]
    size, fmt = {"fvecs": (4, "f"), "ivecs": (4, "i"), "bvecs": (1, "B")}[kind]
    with open(path, "rb") as f:
        while header := f.read(4):
            (dim,) = struct.unpack("<i", header)
            yield struct.unpack(f"<{dim}{fmt}", f.read(dim * size))


def main():
    normalize = "--normalize" in sys.argv
    out = sys.stdout
    for i, row in enumerate(rows(sys.argv[1])):
        if normalize:
            norm = sum(x * x for x in row) ** 0.5 or 1.0
            row = [x / norm for x in row]
        out.write(f"{i}\t[{','.join(repr(float(x)) for x in row)}]\n")


if __name__ == "__main__":
    main()
