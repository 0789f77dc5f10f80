#!/usr/bin/env python3
"""Fashion-MNIST IDX images (gzip) -> `id<TAB>[...]<TAB>label` lines for COPY.
Usage: idx2tsv.py IMAGES.gz [--labels LABELS.gz] [--limit N]"""
import gzip
import struct
import sys


def main():
    args = sys.argv[1:]
    limit = int(args[args.index("--limit") + 1]) if "--limit" in args else None
    labels = None
    if "--labels" in args:
        with gzip.open(args[args.index("--labels") + 1], "rb") as f:
            f.read(8)
            labels = f.read()
    with gzip.open(args[0], "rb") as f:
        _magic, count, rows, cols = struct.unpack(">IIII", f.read(16))
        for i in range(count if limit is None else min(count, limit)):
            pixels = f.read(rows * cols)
            line = f"{i}\t[{','.join(map(str, pixels))}]"
            sys.stdout.write(line + (f"\t{labels[i]}\n" if labels else "\n"))


if __name__ == "__main__":
    main()
