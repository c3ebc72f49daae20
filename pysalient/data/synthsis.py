"""SynthSIS: a deterministic procedural salient-instance segmentation dataset (images + COCO json).

Each image is a cluttered, low-saturation background (two-colour gradient, smooth colour variation, a
texture, dozens of small low-contrast distractor shapes, sensor noise) with 1-6 saturated, possibly
textured instances (ellipses, irregular polygons, stars, smooth blobs, rectangles) of roughly 1 %-40 % of the
image area, placed so that they often touch and occlude each other. Only the instances are annotated, with
their VISIBLE pixels: instances are drawn back to front and each mask is the shape minus every shape drawn
above it. An instance left with too few visible pixels is not drawn at all (rather than drawn and left
unlabelled, which would teach a model to ignore salient objects).

Determinism: image ``index`` of ``split`` depends only on ``np.random.default_rng([seed, split_id, index])``
(split ids: train 0, val 1, test 2) and the size, so the same arguments give byte-identical PNG and json
files, a larger split starts with the images of a smaller one, and the splits never share images.
"""

from __future__ import annotations

import colorsys
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from pysalient.data.coco_json import masks_to_annotations, write_bytes_atomic, write_json_atomic
from pysalient.data.shapes import (
    SHAPE_KINDS,
    TEXTURE_KINDS,
    Shape,
    coordinate_grid,
    paint,
    place_contour,
    rasterize,
    unit_contour,
)

SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
CATEGORY = {"id": 1, "name": "salient", "supercategory": "salient"}
#: An instance is annotated (and drawn) only if at least this fraction of the image stays visible ...
MIN_VISIBLE_AREA = 0.005
#: ... and at least this fraction of its own in-image area: slivers of a mostly hidden shape are not objects.
MIN_VISIBLE_FRACTION = 0.3
# Fixed encoder settings, so files are byte-identical. Noisy synthetic pixels barely compress: fast zlib level 1
# with Huffman-only coding is ~2x faster than the default level for files ~10 % larger.
PNG_PARAMS = (cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY)
GENERATOR_VERSION = 1


@dataclass
class SynthSample:
    """One rendered image with its ground truth.

    Attributes:
        image: uint8 [H, W, 3] BGR.
        masks: bool [K, H, W] visible part of each drawn instance, in drawing (back-to-front) order.
        shapes: the K drawn shapes, same order.
        label_map: uint8 [H, W], k + 1 where instance k was painted last (painter's order), 0 elsewhere.
    """

    image: np.ndarray
    masks: np.ndarray
    shapes: List[Shape]
    label_map: np.ndarray


def synthesize(
    out_dir: Union[str, os.PathLike],
    train: int = 0,
    val: int = 0,
    test: int = 0,
    size: Union[int, Sequence[int]] = 320,
    seed: int = 0,
) -> Dict[str, Path]:
    """Writes a SynthSIS dataset.

    Layout: ``out_dir/images/<split>/<index:06d>.png`` and ``out_dir/annotations/<split>.json`` (COCO: one
    category ``{"id": 1, "name": "salient"}``, compressed RLE masks, area, xywh bbox, iscrowd 0; image ids
    are index + 1 and ``file_name`` is relative to ``out_dir/images``, e.g. ``"test/000003.png"``).

    Args:
        out_dir: output folder (created; existing files of the same names are replaced).
        train, val, test: number of images per split; splits with 0 images are not written.
        size: image size, an int (square) or (height, width).
        seed: dataset seed.

    Returns:
        split name -> path of its json, for the splits written.
    """
    height, width = _parse_size(size)
    counts = {"train": train, "val": val, "test": test}
    for split, count in counts.items():
        if not isinstance(count, (int, np.integer)) or count < 0:
            raise ValueError(f"the number of {split} images must be a non-negative integer, got {count!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    out = Path(out_dir)
    written = {}
    for split, count in counts.items():
        if count:
            written[split] = _write_split(out, split, int(count), (height, width), int(seed))
    return written


def render_sample(size: Union[int, Sequence[int]], seed: int, split: str, index: int) -> SynthSample:
    """Renders image ``index`` of ``split`` exactly as :func:`synthesize` writes it (before PNG encoding)."""
    height, width = _parse_size(size)
    if split not in SPLIT_IDS:
        raise ValueError(f"unknown split {split!r}; expected one of {tuple(SPLIT_IDS)}")
    rng = np.random.default_rng([int(seed), SPLIT_IDS[split], int(index)])
    background = _background(rng, height, width)
    for _ in range(20):
        shapes, masks = _random_shapes(rng, background)
        canvas = background.copy()
        visible, kept, label_map = compose_scene(canvas, shapes, masks)
        if kept:
            break
    else:  # pragma: no cover - the topmost shape alone passes the visibility test in practice
        raise RuntimeError(f"could not place a visible instance in {split} image {index}")
    # Sensor noise, one value per pixel for all channels (luminance noise; also a third of the cost).
    canvas += (rng.uniform(1.0, 3.0) * rng.standard_normal(canvas.shape[:2], dtype=np.float32))[..., None]
    image = np.clip(np.rint(canvas, out=canvas), 0, 255, out=canvas).astype(np.uint8)
    return SynthSample(image, visible, [shapes[i] for i in kept], label_map)


def compose_scene(
    canvas: np.ndarray,
    shapes: Sequence[Shape],
    masks: Optional[Sequence[np.ndarray]] = None,
    min_visible_area: float = MIN_VISIBLE_AREA,
    min_visible_fraction: float = MIN_VISIBLE_FRACTION,
) -> Tuple[np.ndarray, List[int], np.ndarray]:
    """Decides which shapes stay visible enough, paints them back to front and returns their visible masks.

    Shapes are visited from the top down: a shape is kept when its pixels not covered by the kept shapes
    above it are at least ``min_visible_area`` of the image and ``min_visible_fraction`` of its own area.
    Dropped shapes are not painted, so they never hide anything.

    Args:
        canvas: float32 [H, W, 3] BGR background, painted in place.
        shapes: shapes in drawing order (first = bottom).
        masks: their full masks (bool [H, W] each) if already rasterised.
        min_visible_area: fraction of the image area.
        min_visible_fraction: fraction of the shape's own in-image area.

    Returns:
        Visible masks bool [K, H, W] of the kept shapes (bottom first), the kept indices into ``shapes``, and
        the uint8 [H, W] painter's label map (k + 1 where kept shape k was painted last).
    """
    height, width = canvas.shape[:2]
    full = [rasterize(shape.contour, height, width) for shape in shapes] if masks is None else list(masks)
    covered = np.zeros((height, width), dtype=bool)
    visible: Dict[int, np.ndarray] = {}
    for index in reversed(range(len(full))):
        mask = full[index] & ~covered
        area = np.count_nonzero(mask)
        if (
            area > 0
            and area >= min_visible_area * height * width
            and area >= min_visible_fraction * np.count_nonzero(full[index])
        ):
            visible[index] = mask
            covered |= full[index]
    kept = sorted(visible)
    label_map = np.zeros((height, width), dtype=np.uint8)
    for rank, index in enumerate(kept):
        paint(canvas, full[index], shapes[index])
        label_map[full[index]] = rank + 1
    stacked = np.stack([visible[i] for i in kept]) if kept else np.zeros((0, height, width), dtype=bool)
    return stacked, kept, label_map


def _write_split(out: Path, split: str, count: int, size: Tuple[int, int], seed: int) -> Path:
    height, width = size
    images, annotations = [], []
    for index in range(count):
        sample = render_sample(size, seed, split, index)
        ok, encoded = cv2.imencode(".png", sample.image, list(PNG_PARAMS))
        if not ok:  # pragma: no cover - OpenCV always encodes uint8 BGR
            raise RuntimeError(f"PNG encoding failed for {split} image {index}")
        write_bytes_atomic(encoded.tobytes(), out / "images" / split / f"{index:06d}.png")
        image_id = index + 1
        images.append({"id": image_id, "file_name": f"{split}/{index:06d}.png", "height": height, "width": width})
        annotations.extend(masks_to_annotations(sample.masks, len(annotations) + 1, image_id, CATEGORY["id"]))
    info = {
        "description": "SynthSIS procedural salient instance segmentation",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "split": split,
        "height": height,
        "width": width,
    }
    coco = {"info": info, "licenses": [], "images": images, "annotations": annotations, "categories": [CATEGORY]}
    # The json is written last: its presence means the split's images are all on disk.
    return write_json_atomic(coco, out / "annotations" / f"{split}.json")


def _parse_size(size: Union[int, Sequence[int]]) -> Tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        height = width = int(size)
    elif isinstance(size, Sequence) and len(size) == 2 and all(isinstance(v, (int, np.integer)) for v in size):
        height, width = int(size[0]), int(size[1])
    else:
        raise ValueError(f"size must be an int or (height, width), got {size!r}")
    if min(height, width) < 32:
        raise ValueError(f"SynthSIS images need sides of at least 32 pixels, got {height}x{width}")
    return height, width


def _hsv_bgr(hue: float, saturation: float, value: float) -> Tuple[float, float, float]:
    red, green, blue = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return (blue * 255.0, green * 255.0, red * 255.0)


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Low-saturation clutter: gradient, smooth colour field, texture, small low-contrast distractors."""
    y, x = coordinate_grid(height, width)
    start = np.array(_hsv_bgr(rng.random(), rng.uniform(0.0, 0.3), rng.uniform(0.25, 0.85)), dtype=np.float32)
    end = np.array(_hsv_bgr(rng.random(), rng.uniform(0.0, 0.3), rng.uniform(0.25, 0.85)), dtype=np.float32)
    angle = rng.uniform(0.0, 2.0 * math.pi)
    # The gradient and the smooth colour field are built on a coarse grid and upsampled bilinearly: a linear
    # ramp survives that exactly, and it is far cheaper than evaluating them per pixel.
    coarse_h, coarse_w = height // 8 + 2, width // 8 + 2
    corners = np.array([[0, 0], [0, coarse_w - 1], [coarse_h - 1, 0], [coarse_h - 1, coarse_w - 1]], dtype=np.float32)
    projections = corners[:, 1] * math.cos(angle) + corners[:, 0] * math.sin(angle)
    cy, cx = np.mgrid[0:coarse_h, 0:coarse_w].astype(np.float32)
    ramp = (cx * math.cos(angle) + cy * math.sin(angle) - projections.min()) / max(float(np.ptp(projections)), 1.0)
    field = rng.normal(0.0, 14.0, (4, 4, 3)).astype(np.float32)
    coarse = (
        start + (end - start) * ramp[..., None] + cv2.resize(field, (coarse_w, coarse_h), interpolation=cv2.INTER_CUBIC)
    )
    canvas = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR)
    texture = ("stripes", "grain", "blotches", "none")[int(rng.integers(4))]
    amplitude = rng.uniform(4.0, 12.0)
    if texture == "stripes":
        direction, period = rng.uniform(0.0, math.pi), rng.uniform(6.0, 30.0)
        phase = (x * math.cos(direction) + y * math.sin(direction)) * (2.0 * math.pi / period)
        canvas += (amplitude * np.sin(phase))[..., None]
    elif texture == "grain":
        grain = rng.normal(0.0, amplitude, (max(height // 6, 2), max(width // 6, 2))).astype(np.float32)
        canvas += cv2.resize(grain, (width, height), interpolation=cv2.INTER_LINEAR)[..., None]
    elif texture == "blotches":
        blotches = np.zeros((height, width), dtype=np.float32)
        for _ in range(int(rng.integers(5, 15))):
            centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            radius = int(rng.uniform(0.05, 0.2) * min(height, width)) + 1
            cv2.circle(blotches, centre, radius, float(rng.uniform(-1.0, 1.0)), -1)
        canvas += (amplitude * cv2.GaussianBlur(blotches, (0, 0), 4.0))[..., None]
    _add_distractors(rng, canvas)
    return canvas


def _add_distractors(rng: np.random.Generator, canvas: np.ndarray) -> None:
    # Many small shapes a few grey levels off their surroundings: clutter a salient-object model must ignore.
    # Parameters are drawn in one batch per image; per-shape numpy calls would dominate the generation time.
    height, width = canvas.shape[:2]
    count = int(rng.integers(30, 80))
    kinds = rng.integers(0, 4, count)
    centres = rng.uniform(0.0, 1.0, (count, 2)) * (width, height)
    sizes = np.sqrt(np.exp(rng.uniform(math.log(2e-4), math.log(3e-3), count)) * height * width)
    deltas = rng.uniform(-1.0, 1.0, (count, 3)) * rng.uniform(8.0, 28.0, (count, 1))
    shapes = rng.uniform(0.0, 1.0, (count, 4))
    vertices = rng.uniform(0.0, 1.0, (count, 6, 2))
    for index in range(count):
        cx, cy = centres[index]
        local = canvas[min(int(cy), height - 1), min(int(cx), width - 1)]
        colour = tuple(float(value) for value in local + deltas[index])
        size, (aspect, turn, thickness, _) = float(sizes[index]), shapes[index]
        degrees = turn * 360.0
        centre = (int(cx), int(cy))
        if kinds[index] == 0:
            axes = (max(int(size * (0.3 + 0.4 * aspect)), 1), max(int(size * (0.7 - 0.4 * aspect) + 1), 1))
            cv2.ellipse(canvas, centre, axes, degrees, 0, 360, colour, -1, cv2.LINE_8)
        elif kinds[index] == 1:
            box = cv2.boxPoints(((cx, cy), (size * (0.5 + aspect), size * (1.5 - aspect)), degrees))
            cv2.fillConvexPoly(canvas, np.round(box).astype(np.int32), colour, cv2.LINE_8)
        elif kinds[index] == 2:
            # An irregular small polygon: vertices at sorted random angles and random radii.
            angles = np.sort(vertices[index, : 3 + int(thickness * 4), 0]) * (2.0 * math.pi)
            radius = size * (0.4 + 0.6 * vertices[index, : len(angles), 1])
            points = np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], axis=1)
            cv2.fillPoly(canvas, [np.round(points).astype(np.int32).reshape(-1, 1, 2)], colour, cv2.LINE_8)
        else:
            length = size * (1.5 + 2.5 * aspect)
            tip = (int(cx + length * math.cos(turn * 2 * math.pi)), int(cy + length * math.sin(turn * 2 * math.pi)))
            cv2.line(canvas, centre, tip, colour, 1 + int(thickness * 3), cv2.LINE_8)


def _random_shapes(rng: np.random.Generator, background: np.ndarray) -> Tuple[List[Shape], List[np.ndarray]]:
    """1-6 salient shapes (bottom first) with their full masks; later ones are often placed against earlier."""
    height, width = background.shape[:2]
    count = int(rng.integers(1, 7))
    # Fewer, larger objects or more, smaller ones: keeps a full scene from burying most instances.
    largest = min(0.40, 1.3 / count)
    shapes, masks, centres, radii, hues = [], [], [], [], []
    for _ in range(count):
        area = math.exp(rng.uniform(math.log(0.01), math.log(largest))) * height * width
        radius = math.sqrt(area / math.pi)
        if centres and rng.random() < 0.65:
            neighbour = int(rng.integers(len(centres)))
            heading = rng.uniform(0.0, 2.0 * math.pi)
            distance = (radius + radii[neighbour]) * rng.uniform(0.55, 1.05)
            cx = centres[neighbour][0] + distance * math.cos(heading)
            cy = centres[neighbour][1] + distance * math.sin(heading)
        else:
            cx, cy = rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height
        centre = (min(max(cx, 0.05 * width), 0.95 * width), min(max(cy, 0.05 * height), 0.95 * height))
        kind = SHAPE_KINDS[int(rng.integers(len(SHAPE_KINDS)))]
        stretch = math.exp(rng.uniform(math.log(0.6), math.log(1.6)))
        contour = place_contour(unit_contour(kind, rng), centre, area, stretch, rng.uniform(0.0, 2.0 * math.pi))
        mask = rasterize(contour, height, width)
        sampled = background[::4, ::4][mask[::4, ::4]]
        local = sampled.mean(axis=0) if sampled.size else background.reshape(-1, 3).mean(axis=0)
        hue, colour = _salient_colour(rng, local, hues)
        texture = TEXTURE_KINDS[int(rng.choice(len(TEXTURE_KINDS), p=(0.45, 0.2, 0.15, 0.2)))]
        # The pattern's second colour keeps the hue (one object, not two) at a clearly different brightness.
        second = _hsv_bgr(hue, rng.uniform(0.3, 0.8), rng.uniform(0.25, 0.5))
        shapes.append(
            Shape(
                contour=contour,
                colour=colour,
                texture=texture,
                texture_colour=second,
                period=float(rng.uniform(3.0, 10.0)),
                angle=float(rng.uniform(0.0, math.pi)),
                shade=float(rng.uniform(0.0, 0.35)),
                shade_angle=float(rng.uniform(0.0, 2.0 * math.pi)),
            )
        )
        masks.append(mask)
        centres.append(centre)
        radii.append(radius)
        hues.append(hue)
    return shapes, masks


def _salient_colour(
    rng: np.random.Generator, local: np.ndarray, hues: Sequence[float]
) -> Tuple[float, Tuple[float, float, float]]:
    """A saturated colour far from the local background and in a hue unlike the other instances'."""
    best, best_score = None, -1.0
    for _ in range(12):
        hue = rng.random()
        colour = _hsv_bgr(hue, rng.uniform(0.65, 1.0), rng.uniform(0.6, 1.0))
        contrast = float(np.linalg.norm(np.asarray(colour) - local))
        gap = min((min(abs(hue - other), 1.0 - abs(hue - other)) for other in hues), default=1.0)
        score = min(contrast / 100.0, gap / 0.12)
        if score > best_score:
            best, best_score = (hue, colour), score
        if score >= 1.0:
            break
    return best
