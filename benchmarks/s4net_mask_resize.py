"""S4Net's test-time mask resize: pysalient's fused bilinear op against the released code's Lanczos-4, in mask AP.

The released S4Net resizes each RoI's 2-class foreground probability from the stride-8 map to the original image
with OpenCV's ``INTER_LANCZOS4``, multiplies it by the box rectangle and thresholds it at 0.5; pysalient does the
same with one bilinear interpolation inside :func:`pysalient.ops.resize_masks_in_boxes`. This evaluates one model
both ways on a COCO-json split (same detections, only the mask step differs) and appends the table to
``benchmarks/RESULTS.md`` unless ``--no-write``.

    python benchmarks/s4net_mask_resize.py --weights runs/light/weights.pth --data synth_test/annotations/test.json
"""

from __future__ import annotations

import argparse
import datetime
import platform
from pathlib import Path
from typing import Dict, List

import cv2
import numpy as np
import torch

import pysalient
from pysalient import ops

RESULTS_PATH = Path(__file__).resolve().parent / "RESULTS.md"
KEYS = ("AP", "AP50", "AP70", "AP75")


def lanczos_masks_in_boxes(
    probabilities: torch.Tensor,
    boxes: torch.Tensor,
    padded_hw: List[int],
    image_hw: List[int],
    output_hw: List[int],
    threshold: float,
) -> torch.Tensor:
    """The released test path: the map part covering the resized image, ``cv2.resize`` (Lanczos-4) to the output
    size, times the box rectangle ``int(x1) <= x < int(x2) + 1``, ``> threshold``. uint8 [N, H, W]."""
    height, width = int(output_hw[0]), int(output_hw[1])
    masks = torch.zeros((probabilities.shape[0], height, width), dtype=torch.uint8)
    map_h, map_w = probabilities.shape[-2:]
    crop_h = max(1, round(map_h * image_hw[0] / padded_hw[0]))
    crop_w = max(1, round(map_w * image_hw[1] / padded_hw[1]))
    for index, (probability, box) in enumerate(zip(probabilities.float().cpu().numpy(), boxes.tolist())):
        resized = cv2.resize(probability[:crop_h, :crop_w], (width, height), interpolation=cv2.INTER_LANCZOS4)
        x1, y1 = max(int(box[0]), 0), max(int(box[1]), 0)
        x2, y2 = min(int(box[2]) + 1, width), min(int(box[3]) + 1, height)
        if x2 > x1 and y2 > y1:
            inside = resized[y1:y2, x1:x2] > threshold
            masks[index, y1:y2, x1:x2] = torch.from_numpy(inside.astype(np.uint8))
    return masks


def evaluate_both(weights: str, data: str) -> Dict[str, Dict[str, float]]:
    """Mask AP of the model with the bilinear op and with the Lanczos replacement."""
    model = pysalient.load(weights)
    results = {"bilinear (pysalient)": model.evaluate(data)}
    original = ops.resize_masks_in_boxes
    ops.resize_masks_in_boxes = lanczos_masks_in_boxes  # the detector calls ops.resize_masks_in_boxes
    try:
        results["Lanczos-4 (released code)"] = model.evaluate(data)
    finally:
        ops.resize_masks_in_boxes = original
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="an S4Net checkpoint or registry name")
    parser.add_argument("--data", required=True, help="COCO instances json of the evaluation split")
    parser.add_argument("--no-write", action="store_true", help="print only, do not append to RESULTS.md")
    args = parser.parse_args()
    results = evaluate_both(args.weights, args.data)
    lines = [
        f"## {datetime.date.today()} — S4Net test-time mask resize, bilinear vs Lanczos-4 — {platform.machine()}, "
        f"torch {torch.__version__}",
        "",
        f"`python benchmarks/s4net_mask_resize.py --weights {args.weights} --data {args.data}` (same detections; only "
        "the mask resize differs)",
        "",
        "| mask resize | " + " | ".join(KEYS) + " |",
        "|---|" + "---|" * len(KEYS),
    ]
    for name, metrics in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{metrics[key]:.2f}" for key in KEYS) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        with open(RESULTS_PATH, "a", encoding="utf-8") as handle:
            handle.write("\n" + text)


if __name__ == "__main__":
    main()
