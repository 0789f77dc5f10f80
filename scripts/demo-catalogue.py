#!/usr/bin/env python3
"""Generate a small product catalogue for the demo when ../shared/data/fashion-products is absent:
DIR/styles_subset.csv (same columns as the shared catalogue) and DIR/images/<id>.bmp, 64x64
pictures of a coloured shape per article type. Standard library only.
Usage: demo-catalogue.py DIR [ROWS]"""
import csv
import os
import random
import struct
import sys

COLOURS = {"Red": (200, 30, 40), "Blue": (30, 60, 200), "Green": (40, 160, 60), "Black": (20, 20, 20),
           "White": (235, 235, 235), "Yellow": (230, 200, 40), "Pink": (240, 140, 180)}
ARTICLES = [("Women", "Apparel", "Dress", "Dresses"), ("Men", "Apparel", "Topwear", "Tshirts"),
            ("Women", "Footwear", "Shoes", "Heels"), ("Men", "Footwear", "Shoes", "Casual Shoes"),
            ("Women", "Accessories", "Bags", "Handbags"), ("Men", "Accessories", "Watches", "Watches")]


def inside(article, x, y):
    """A crude silhouette per article type on a 64x64 canvas."""
    if article == "Dresses":
        return 10 < y < 58 and abs(x - 32) < 6 + (y - 10) // 3
    if article == "Tshirts":
        return (14 < y < 56 and 18 < x < 46) or (14 < y < 26 and 6 < x < 58)
    if article in ("Heels", "Casual Shoes"):
        return 36 < y < 50 and 8 < x < 56 and (article == "Casual Shoes" or x > 30 or y > 44)
    if article == "Handbags":
        return (24 < y < 54 and 12 < x < 52) or (14 < y < 26 and 22 < x < 42 and not 17 < y < 23)
    return (x - 32) ** 2 + (y - 32) ** 2 < 300  # watch face


def bmp(path, pixel):
    width = height = 64
    rows = b"".join(bytes(c for x in range(width) for c in reversed(pixel(x, height - 1 - y))) for y in range(height))
    header = struct.pack("<2sIHHI", b"BM", 54 + len(rows), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(rows), 2835, 2835, 0, 0)
    with open(path, "wb") as f:
        f.write(header + info + rows)


def main():
    out, rows = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 300
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    rng = random.Random(7)
    with open(os.path.join(out, "styles_subset.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "gender", "masterCategory", "subCategory", "articleType", "baseColour",
                    "season", "year", "usage", "productDisplayName"])
        for i in range(rows):
            gender, master, sub, article = ARTICLES[i % len(ARTICLES)]
            colour = rng.choice(list(COLOURS))
            fg = COLOURS[colour]
            bg = (250, 250, 250) if colour != "White" else (120, 120, 120)
            bmp(os.path.join(out, "images", f"{10000 + i}.bmp"),
                lambda x, y: fg if inside(article, x, y) else bg)
            w.writerow([10000 + i, gender, master, sub, article, colour, "Summer", 2024, "Casual",
                        f"Demo {colour} {article} {i}"])


if __name__ == "__main__":
    main()
