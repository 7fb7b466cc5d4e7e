"""Benchmark: the detail transfer (full resolution from a low-resolution edit) per photo size.

    .venv/bin/python bench/fullres.py [--device cpu|cuda] [--sizes 1200x800,6000x4000]

Prints seconds per photo and per megapixel for each size (best of 3), the model's working size
fixed at 624x416 (SD 1.x on a 3:2 photo).
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
from PIL import Image, ImageFilter


def main() -> None:
    """Time detail_transfer on random photos of each size."""
    from photobatch.plugins.diffusion.fullres import detail_transfer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", default="1200x800,3000x2000,6000x4000,8256x5504")
    args = parser.parse_args()
    import torch

    print(f"machine: {platform.node()} {platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"device {args.device}")
    rng = np.random.default_rng(0)
    for size in args.sizes.split(","):
        width, height = (int(v) for v in size.lower().split("x"))
        full = Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))
        before = full.resize((624, 416), Image.Resampling.LANCZOS)
        after = before.filter(ImageFilter.GaussianBlur(1)).point(lambda v: min(255, v + 8))
        times = []
        for _ in range(3):
            start = time.perf_counter()
            detail_transfer(full, before, after, device=args.device)
            times.append(time.perf_counter() - start)
        best = min(times)
        print(f"{width}x{height} ({width * height / 1e6:.1f} MP): {best:.3f} s, "
              f"{best / (width * height / 1e6):.3f} s per MP")


if __name__ == "__main__":
    main()
