"""Procedural shapes and fills for SynthSIS: random contours, rasterisation, textured painting.

Every shape is a closed polygon (ellipses and smooth blobs are densely sampled), so a single rasteriser
(``cv2.fillPoly`` without antialiasing) defines both the painted pixels and the annotated mask: the two can
never disagree by an edge pixel. All randomness is drawn when a :class:`Shape` is made; painting is a pure
function of the shape, which is what lets tests re-render and compare.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Tuple

import cv2
import numpy as np

SHAPE_KINDS = ("ellipse", "polygon", "star", "blob", "rectangle")
TEXTURE_KINDS = ("flat", "stripes", "checker", "dots")


@dataclass(frozen=True)
class Shape:
    """One filled, optionally textured, closed contour.

    Attributes:
        contour: int32 [P, 2] polygon vertices (x, y) in pixels, P >= 3.
        colour: base fill colour (B, G, R), 0-255.
        texture: one of :data:`TEXTURE_KINDS`.
        texture_colour: second colour (B, G, R) of the texture pattern.
        period: texture period in pixels.
        angle: texture orientation in radians.
        shade: relative brightness change across the shape (lighting), e.g. 0.2 = +-10 %.
        shade_angle: direction of the brightness change in radians.
    """

    contour: np.ndarray
    colour: Tuple[float, float, float]
    texture: str = "flat"
    texture_colour: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    period: float = 8.0
    angle: float = 0.0
    shade: float = 0.0
    shade_angle: float = 0.0


def unit_contour(kind: str, rng: np.random.Generator) -> np.ndarray:
    """A random contour of the given kind around the origin, radius about 1.

    Args:
        kind: one of :data:`SHAPE_KINDS`.
        rng: source of the shape's randomness.

    Returns:
        float64 [P, 2] (x, y) vertices in counter-clockwise order.
    """
    if kind == "ellipse":
        t = np.linspace(0.0, 2.0 * math.pi, 72, endpoint=False)
        radius = np.ones_like(t)
    elif kind == "polygon":
        count = int(rng.integers(3, 9))
        # Jittered angles and radii give irregular (sometimes slightly concave) polygons, not regular ones.
        t = np.sort((np.arange(count) + rng.uniform(-0.3, 0.3, count)) * (2.0 * math.pi / count))
        radius = rng.uniform(0.7, 1.0, count)
    elif kind == "star":
        points = int(rng.integers(4, 9))
        t = np.arange(2 * points) * (math.pi / points) + rng.uniform(0.0, 2.0 * math.pi)
        radius = np.where(np.arange(2 * points) % 2 == 0, 1.0, rng.uniform(0.4, 0.65))
    elif kind == "blob":
        t = np.linspace(0.0, 2.0 * math.pi, 96, endpoint=False)
        radius = np.ones_like(t)
        # A few low Fourier harmonics with decaying amplitude: smooth, organic, still star-shaped (no loops).
        for harmonic in range(2, 6):
            radius = radius + rng.uniform(0.0, 0.35 / harmonic) * np.cos(harmonic * t + rng.uniform(0, 2 * math.pi))
        radius = np.maximum(radius, 0.3)
    elif kind == "rectangle":
        aspect = rng.uniform(0.5, 1.0)
        return np.array([[-1.0, -aspect], [1.0, -aspect], [1.0, aspect], [-1.0, aspect]])
    else:
        raise ValueError(f"unknown shape kind {kind!r}; expected one of {SHAPE_KINDS}")
    return np.stack([radius * np.cos(t), radius * np.sin(t)], axis=1)


def place_contour(
    unit: np.ndarray, center: Tuple[float, float], area: float, stretch: float, angle: float
) -> np.ndarray:
    """Scales, stretches, rotates and moves a unit contour so that its polygon area is ``area`` pixels.

    Args:
        unit: float [P, 2] contour around the origin.
        center: (x, y) position in pixels.
        area: target polygon area in pixels.
        stretch: x/y aspect factor (> 0) applied before the rotation.
        angle: rotation in radians.

    Returns:
        int32 [P, 2] vertices ready for ``cv2.fillPoly``.
    """
    points = unit * np.array([stretch, 1.0 / stretch])
    scale = math.sqrt(area / max(polygon_area(points), 1e-9))
    cos, sin = math.cos(angle), math.sin(angle)
    rotated = points @ np.array([[cos, sin], [-sin, cos]]) * scale
    return np.round(rotated + np.asarray(center, dtype=np.float64)).astype(np.int32)


def polygon_area(points: np.ndarray) -> float:
    """Area of a closed polygon given as [P, 2] vertices (shoelace formula)."""
    return float(cv2.contourArea(np.ascontiguousarray(points, dtype=np.float32)))


@functools.lru_cache(maxsize=8)
def coordinate_grid(height: int, width: int) -> Tuple[np.ndarray, np.ndarray]:
    """Read-only float32 [H, W] row (y) and column (x) coordinates, cached per size."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    y.flags.writeable = False
    x.flags.writeable = False
    return y, x


def rasterize(contour: np.ndarray, height: int, width: int) -> np.ndarray:
    """The pixels covered by a polygon (no antialiasing), clipped to the image.

    Returns:
        bool [height, width].
    """
    canvas = np.zeros((height, width), dtype=np.uint8)
    cv2.fillPoly(canvas, [contour.reshape(-1, 1, 2)], 1, lineType=cv2.LINE_8)
    return canvas.view(bool)


def paint(image: np.ndarray, mask: np.ndarray, shape: Shape) -> None:
    """Paints ``shape`` into ``image`` at the pixels of ``mask`` (in place).

    Args:
        image: float32 [H, W, 3] BGR canvas.
        mask: bool [H, W], the shape's pixels (from :func:`rasterize`).
        shape: fill description.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    columns = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, columns[0], columns[-1] + 1
    grid_y, grid_x = coordinate_grid(*mask.shape)
    # Coordinates relative to the box centre, along (u) and across (v) the texture direction.
    x = grid_x[y0:y1, x0:x1] - (x0 + x1) / 2.0
    y = grid_y[y0:y1, x0:x1] - (y0 + y1) / 2.0
    cos, sin = math.cos(shape.angle), math.sin(shape.angle)
    extent = float(max(x1 - x0, y1 - y0, 1))
    shade_x = shape.shade * math.cos(shape.shade_angle) / extent
    shade_y = shape.shade * math.sin(shape.shade_angle) / extent
    brightness = (1.0 + shade_x * x + shade_y * y)[..., None]
    base = np.asarray(shape.colour, dtype=np.float32)
    if shape.texture == "flat":
        fill = base * brightness
    else:
        u = (x * cos + y * sin) / shape.period
        v = (x * sin - y * cos) / shape.period
        if shape.texture == "stripes":
            pattern = np.floor(u) % 2
        elif shape.texture == "checker":
            pattern = (np.floor(u) + np.floor(v)) % 2
        elif shape.texture == "dots":
            pattern = ((u - np.floor(u) - 0.5) ** 2 + (v - np.floor(v) - 0.5) ** 2 < 0.09).astype(np.float32)
        else:
            raise ValueError(f"unknown texture {shape.texture!r}; expected one of {TEXTURE_KINDS}")
        second = np.asarray(shape.texture_colour, dtype=np.float32)
        fill = (base + pattern[..., None] * (second - base)) * brightness
    np.copyto(image[y0:y1, x0:x1], fill, where=mask[y0:y1, x0:x1, None])
