"""The synthetic chest radiograph without findings: air around a bright torso, two darker lung
fields, the mediastinum with the spine and the heart between them, 8-12 rib arcs per side, the
clavicles and lung texture; then the exposure (gain, gradient, low-frequency drift) and the
detector's noise. ``datasets/xray.py`` adds the findings between the two."""
import math
from typing import Tuple

import numpy as np

from .rendering import smooth_field

__all__ = ["BITS_STORED", "MAX_VALUE", "draw_chest", "expose", "smoothstep"]

# Pixel values: 12 bits, as most digital radiography detectors deliver.
BITS_STORED = 12
MAX_VALUE = 2**BITS_STORED - 1

# Geometry, as fractions of the image side (the image is square); each drawn per image.
TORSO_CENTRE_JITTER = 0.03
TORSO_SEMI_AXES = ((0.38, 0.46), (0.60, 0.72))  # (x range, y range); taller than the image
TORSO_CENTRE_Y = (0.52, 0.60)
LUNG_OFFSET_X = (0.17, 0.22)  # lung centre from the midline
LUNG_CENTRE_Y = (0.40, 0.48)
LUNG_SEMI_AXES = ((0.12, 0.16), (0.25, 0.31))
LUNG_TILT_DEG = (0.0, 10.0)  # apices lean toward the midline
MEDIASTINUM_HALF_WIDTH = (0.05, 0.07)
SPINE_HALF_WIDTH = (0.025, 0.035)
VERTEBRA_PERIOD = (0.045, 0.06)
HEART_OFFSET = ((0.06, 0.10), (0.16, 0.21))  # from the midline (toward image right) and lung centre
HEART_SEMI_AXES = ((0.15, 0.19), (0.11, 0.14))
TORSO_SQUARENESS = 3.0  # exponent of the torso's superellipse: boxier than an ellipse
CLAVICLE_SPAN = ((0.04, 0.06), (0.30, 0.36))  # inner and outer end, from the midline
CLAVICLE_RISE = (0.04, 0.08)  # the outer end is higher
CLAVICLE_THICKNESS = (0.02, 0.03)
EDGE_SOFTNESS = 0.08  # organ edges blend over this fraction of their radius
RIBS_PER_SIDE = (8, 12)
RIB_THICKNESS = (0.018, 0.026)
RIB_RISE = (0.03, 0.07)  # how far a rib climbs from the spine before curving down
RIB_DROP = (0.18, 0.26)  # how far it falls at the side of the chest
RIB_DROP_GROWTH = 0.8  # lower ribs fall this much more, relative to the top rib
RIB_FADE = 0.08  # ribs fade out over this far below the lungs

# Intensities in 12-bit units before the exposure is applied (MONOCHROME2: dense is bright).
AIR_LEVEL = (150.0, 450.0)
SOFT_TISSUE_LEVEL = (1700.0, 2100.0)
LUNG_LEVEL = (750.0, 1100.0)
MEDIASTINUM_ADD = (300.0, 550.0)
SPINE_ADD = (150.0, 350.0)
HEART_ADD = (250.0, 450.0)
RIB_ADD = (200.0, 380.0)
CLAVICLE_ADD = (250.0, 400.0)
LUNG_TEXTURE = (150.0, 300.0)
LUNG_TEXTURE_CELLS = (10, 16)

# Exposure: overall gain, a linear gradient and a low-frequency drift; then noise whose variance
# grows with the signal (quantum noise) plus a constant part (detector electronics).
EXPOSURE_GAIN = (0.8, 1.15)
GRADIENT_AMPLITUDE = (0.0, 400.0)
DRIFT_AMPLITUDE, DRIFT_CELLS = (0.0, 250.0), (2, 3)
QUANTUM_NOISE = (0.5, 1.2)  # std = this * sqrt(value)
ELECTRONIC_NOISE = (4.0, 12.0)


def draw_chest(rng: np.random.Generator, size: int) -> Tuple[np.ndarray, np.ndarray]:
    """The anatomy of one radiograph, before the exposure.

    Returns:
        pixels: (size, size) float32 in 12-bit units, MONOCHROME2 (dense is bright).
        lung_field: (size, size) bool, where findings may lie: pure lung, away from its soft edge,
            the heart and the mediastinum.
    """
    ys = np.arange(size, dtype=np.float32)[:, None]
    xs = np.arange(size, dtype=np.float32)[None, :]

    midline = size * (0.5 + rng.uniform(-TORSO_CENTRE_JITTER, TORSO_CENTRE_JITTER))
    torso = _soft_ellipse(
        xs, ys, midline, size * rng.uniform(*TORSO_CENTRE_Y),
        size * rng.uniform(*TORSO_SEMI_AXES[0]), size * rng.uniform(*TORSO_SEMI_AXES[1]), 0.0, TORSO_SQUARENESS,
    )
    lung_y = size * rng.uniform(*LUNG_CENTRE_Y)
    lungs = np.zeros((size, size), dtype=np.float32)
    for side in (-1, 1):
        tilt = math.radians(rng.uniform(*LUNG_TILT_DEG)) * side
        lung = _soft_ellipse(
            xs, ys, midline + side * size * rng.uniform(*LUNG_OFFSET_X), lung_y + size * rng.uniform(-0.02, 0.02),
            size * rng.uniform(*LUNG_SEMI_AXES[0]), size * rng.uniform(*LUNG_SEMI_AXES[1]), tilt,
        )
        lungs = np.maximum(lungs, lung)
    mediastinum = _soft_band(xs, midline, size * rng.uniform(*MEDIASTINUM_HALF_WIDTH))
    spine = _soft_band(xs, midline, size * rng.uniform(*SPINE_HALF_WIDTH))
    heart = _soft_ellipse(
        xs, ys, midline + size * rng.uniform(*HEART_OFFSET[0]), lung_y + size * rng.uniform(*HEART_OFFSET[1]),
        size * rng.uniform(*HEART_SEMI_AXES[0]), size * rng.uniform(*HEART_SEMI_AXES[1]), 0.0,
    )
    lungness = lungs * (1 - heart) * (1 - mediastinum) * torso
    lung_field = lungness >= 0.999

    air, tissue, lung = (rng.uniform(*r) for r in (AIR_LEVEL, SOFT_TISSUE_LEVEL, LUNG_LEVEL))
    pixels = air + (tissue - air) * torso - (tissue - lung) * lungness
    # the heart and the mediastinum are one dense block: where they overlap, neither adds to the other
    pixels += np.maximum(rng.uniform(*MEDIASTINUM_ADD) * mediastinum, rng.uniform(*HEART_ADD) * heart) * torso
    period = size * rng.uniform(*VERTEBRA_PERIOD)
    vertebrae = 0.75 + 0.25 * np.cos(ys * np.float32(2 * math.pi / period) + np.float32(rng.uniform(0, 2 * math.pi)))
    pixels += rng.uniform(*SPINE_ADD) * spine * vertebrae * torso
    pixels += _ribs(rng, xs, ys, size, midline, lung_y) * torso
    pixels += _clavicles(rng, xs, ys, size, midline, lung_y) * torso
    cells = int(rng.integers(LUNG_TEXTURE_CELLS[0], LUNG_TEXTURE_CELLS[1] + 1))
    texture = (smooth_field(rng, size, size, cells) - 0.5).astype(np.float32)
    pixels += rng.uniform(*LUNG_TEXTURE) * texture * lungness

    return pixels, lung_field


def expose(rng: np.random.Generator, pixels: np.ndarray, size: int) -> np.ndarray:
    """Apply the exposure and the detector's noise: (size, size) uint16 in 0..MAX_VALUE."""
    ys = np.arange(size, dtype=np.float32)[:, None]
    xs = np.arange(size, dtype=np.float32)[None, :]

    pixels *= np.float32(rng.uniform(*EXPOSURE_GAIN))
    angle = rng.uniform(0, 2 * math.pi)
    ramp = (xs - size / 2) * math.cos(angle) + (ys - size / 2) * math.sin(angle)
    pixels += np.float32(rng.uniform(*GRADIENT_AMPLITUDE) / size) * ramp
    cells = int(rng.integers(DRIFT_CELLS[0], DRIFT_CELLS[1] + 1))
    drift = (smooth_field(rng, size, size, cells) - 0.5).astype(np.float32)
    pixels += np.float32(rng.uniform(*DRIFT_AMPLITUDE)) * drift

    quantum, electronic = rng.uniform(*QUANTUM_NOISE), rng.uniform(*ELECTRONIC_NOISE)
    sigma = np.sqrt(np.float32(quantum**2) * np.maximum(pixels, 0) + np.float32(electronic**2))
    pixels += sigma * rng.standard_normal((size, size), dtype=np.float32)
    return np.clip(np.rint(pixels), 0, MAX_VALUE).astype(np.uint16)


def _soft_ellipse(
    xs: np.ndarray, ys: np.ndarray, cx: float, cy: float, ax: float, ay: float, tilt: float, power: float = 2.0
) -> np.ndarray:
    """(H, W) float32 in 0..1: 1 inside the (tilted) ellipse, falling to 0 over its outer EDGE_SOFTNESS.

    ``power`` > 2 gives a superellipse, |u|^p + |v|^p <= 1: a rounded box.
    """
    c, s = math.cos(tilt), math.sin(tilt)
    u = np.abs(((xs - cx) * c + (ys - cy) * s) / ax)
    v = np.abs((-(xs - cx) * s + (ys - cy) * c) / ay)
    radius = np.sqrt(u * u + v * v) if power == 2 else (u**power + v**power) ** (1 / power)
    return smoothstep((1 - radius) / EDGE_SOFTNESS)

def _soft_band(xs: np.ndarray, centre: float, half_width: float) -> np.ndarray:
    """(1, W) float32 in 0..1: a vertical band, soft over its outer EDGE_SOFTNESS."""
    return smoothstep((1 - np.abs(xs - centre) / half_width) / EDGE_SOFTNESS)

def smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0, 1)
    return t * t * (3 - 2 * t)

def _ribs(
    rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray, size: int, midline: float, lung_y: float
) -> np.ndarray:
    """(H, W) float32: the added brightness of the posterior rib arcs of both sides.

    A side's ribs follow one family of curves, y = y_k - rise * u + drop * g(y) * u^2 with u the
    distance from the spine over the half chest and g growing downward (lower ribs slope more).
    A rib is a band of constant height h = y - curve, so h indexes a 1-D profile of all ribs, and
    one interpolation draws them all.
    """
    ribs = np.zeros((size, size), dtype=np.float32)
    half_chest = size * (LUNG_OFFSET_X[1] + LUNG_SEMI_AXES[0][1])
    top = lung_y - size * LUNG_SEMI_AXES[1][1]
    bottom = lung_y + size * LUNG_SEMI_AXES[1][1]
    growth = 1 + RIB_DROP_GROWTH * np.clip((ys - top) / (bottom - top), 0, 1)
    for side in (-1, 1):
        u = np.clip(side * (xs - midline) / half_chest, 0, None)
        height = ys - size * (-rng.uniform(*RIB_RISE) * u + rng.uniform(*RIB_DROP) * growth * u * u)
        count = int(rng.integers(RIBS_PER_SIDE[0], RIBS_PER_SIDE[1] + 1))
        spacing = size * 2 * LUNG_SEMI_AXES[1][1] / count
        starts = top + spacing * (np.arange(count) + rng.uniform(-0.15, 0.15, size=count))
        thickness = size * rng.uniform(*RIB_THICKNESS, size=count)
        amplitude = rng.uniform(*RIB_ADD, size=count)
        grid = np.arange(math.floor(height.min()), math.ceil(height.max()) + 1, 0.25)
        profile = np.zeros_like(grid)
        for start, thick, amp in zip(starts, thickness, amplitude):
            # flat-topped: the cortex of a rib is as bright as its middle
            profile += amp * np.sqrt(np.clip(1 - ((grid - start) / (thick / 2)) ** 2, 0, None))
        in_side = (side * (xs - midline) > 0).astype(np.float32)
        ribs += in_side * np.interp(height, grid, profile).astype(np.float32)
    return ribs * smoothstep((bottom + size * RIB_FADE - ys) / (size * RIB_FADE))

def _clavicles(
    rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray, size: int, midline: float, lung_y: float
) -> np.ndarray:
    """(H, W) float32: the added brightness of the two clavicles, bands rising from the midline outward."""
    bones = np.zeros((size, size), dtype=np.float32)
    top = lung_y - size * LUNG_SEMI_AXES[1][0]
    for side in (-1, 1):
        x0, x1 = (midline + side * size * rng.uniform(*span) for span in CLAVICLE_SPAN)
        y0 = top + size * rng.uniform(-0.02, 0.02)
        y1 = y0 - size * rng.uniform(*CLAVICLE_RISE)
        # distance from the segment (x0, y0)-(x1, y1)
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((xs - x0) * dx + (ys - y0) * dy) / (dx * dx + dy * dy), 0, 1)
        distance = np.hypot(xs - (x0 + t * dx), ys - (y0 + t * dy))
        half = size * rng.uniform(*CLAVICLE_THICKNESS) / 2
        bones += rng.uniform(*CLAVICLE_ADD) * np.sqrt(np.clip(1 - (distance / half) ** 2, 0, None))
    return bones
