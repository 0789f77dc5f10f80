#!/usr/bin/env python3
"""The Python side of bench/embed/run.sh: the same ONNX files through Python onnxruntime, with
PIL preprocessing (open_clip's eval transform: bicubic shortest-side resize, centre crop,
normalise) and open_clip's tokenizer, as a Python application would embed.

Loads the sessions and the data once, then reads lines "MODALITY BATCH" (image|text, 1|32) on
stdin and answers each with one JSON line: items, seconds, items/s, median ms per call and the
preprocessing share (decode + resize + normalise, or tokenise, over the whole call).

Usage: python_ort.py MODEL_DIR PHOTO_DIR CAPTIONS_TXT N THREADS
"""
import csv
import json
import os
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort
import open_clip
from PIL import Image, ImageOps

model_dir, photo_dir, captions_file, n, threads = sys.argv[1:6]
n, threads = int(n), int(threads)
config = json.load(open(os.path.join(model_dir, "xmodal.json")))
size = config["image"]["resize"]
mean = np.array(config["image"]["mean"], dtype=np.float32)
std = np.array(config["image"]["std"], dtype=np.float32)


def session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def preprocess(path):
    image = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    w, h = image.size
    short, long = min(w, h), max(w, h)
    new_long = int(size * long / short)
    image = image.resize((size, new_long) if w <= h else (new_long, size), Image.BICUBIC)
    left, top = round((image.width - size) / 2), round((image.height - size) / 2)
    image = image.crop((left, top, left + size, top + size))
    pixels = (np.asarray(image, dtype=np.float32) / 255.0 - mean) / std
    return pixels.transpose(2, 0, 1)


def normalise(rows):
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def measure(name, inputs, batch, prepare, infer):
    calls, preprocess_s = [], 0.0
    for start in range(0, len(inputs), batch):
        t0 = time.perf_counter()
        prepared = prepare(inputs[start:start + batch])
        t1 = time.perf_counter()
        normalise(infer(prepared))
        calls.append(time.perf_counter() - t0)
        preprocess_s += t1 - t0
    total = sum(calls)
    print(json.dumps({"side": "python onnxruntime", "modality": name, "batch": batch,
                      "items": len(inputs), "seconds": round(total, 3),
                      "items_per_s": round(len(inputs) / total, 2),
                      "median_ms_per_call": round(statistics.median(calls) * 1000, 1),
                      "preprocess_share": round(preprocess_s / total, 3)}), flush=True)


photos = sorted(os.listdir(photo_dir))[:n]
captions, seen = [], set()
with open(captions_file, newline="") as f:
    for row in csv.DictReader(f):
        if row["image"] not in seen:
            seen.add(row["image"])
            captions.append(row["caption"])
captions = captions[:n]

visual = session(os.path.join(model_dir, config["image"]["model"]))
image_in, image_out = config["image"]["input"], config["image"]["output"]
textual = session(os.path.join(model_dir, config["text"]["model"]))
text_in, text_out = config["text"]["input_ids"], config["text"]["output"]

paths = [os.path.join(photo_dir, p) for p in photos]
visual.run([image_out], {image_in: np.stack([preprocess(paths[0])])})  # warm-up
textual.run([text_out], {text_in: open_clip.tokenize(["warm up"]).numpy()})
for line in sys.stdin:
    modality, batch = line.split()
    if modality == "image":
        measure("image", paths, int(batch), lambda chunk: np.stack([preprocess(p) for p in chunk]),
                lambda x: visual.run([image_out], {image_in: x})[0])
    else:
        measure("text", captions, int(batch), lambda chunk: open_clip.tokenize(chunk).numpy(),
                lambda x: textual.run([text_out], {text_in: x})[0])
