#!/usr/bin/env python3
"""Convert TEXMEX .fvecs/.bvecs/.ivecs to `id<TAB>[v1,v2,...]` lines for COPY (stdlib only).
Usage: vecs2tsv.py FILE [--normalize] [--limit N]"""
import itertools
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
    args = sys.argv[1:]
    normalize = "--normalize" in args
    limit = int(args[args.index("--limit") + 1]) if "--limit" in args else None
    for i, row in enumerate(itertools.islice(rows(args[0]), limit)):
        if normalize:
            norm = sum(x * x for x in row) ** 0.5 or 1.0
            row = [x / norm for x in row]
        sys.stdout.write(f"{i}\t[{','.join(map(repr, row))}]\n")


if __name__ == "__main__":
    main()
