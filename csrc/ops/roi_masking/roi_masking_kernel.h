// Geometry of S4Net's RoIMasking (Fan et al., "S4Net: Single Stage Salient-Instance Segmentation", §3.2),
// shared by the CPU and CUDA kernels. A RoI becomes eight integers on the feature grid; the mask value of any
// cell follows from them, so no [R, H, W] mask is ever stored.
#pragma once

#include <c10/macros/Macros.h>

#include <cmath>
#include <cstdint>

namespace pysalient {
namespace roi_masking {

// Values of the `mode` argument.
constexpr int64_t kBinary = 0;          // 1 inside the box
constexpr int64_t kExpandedBinary = 1;  // 1 inside the box and its ring
constexpr int64_t kTernary = 2;         // +1 inside the box, -1 in the ring (the S4Net default)

// Half-open cell ranges: the box [x0, xe) x [y0, ye) and the expanded box [ex0, exe) x [ey0, eye), both inside
// the map. An empty box has every range empty.
struct RoiCells {
  int64_t x0, xe, y0, ye;
  int64_t ex0, exe, ey0, eye;
};

// fmax/fmin return the other operand for NaN, so a NaN coordinate acts as 0 and +-inf clip to the border; the
// clamp happens in double precision before any conversion to an integer, which would be undefined out of range.
C10_HOST_DEVICE inline double clip_to(double value, double limit) { return fmin(fmax(value, 0.0), limit); }

// Box snapped outward to whole cells (x0 = floor(x1 * s), xe = floor(x2 * s) + 1, as the official code's
// `int(x2 // stride) + 1`), clipped to the map; ring width floor(extent * expand_ratio) per side, measured on
// the clipped box, and the expanded box clamped to the map (DESIGN.md §3). The official `generate_bimasks`
// differs at the top/left border: a negative ring start becomes a numpy slice start counted from the far end,
// which usually empties the ring along that axis; we do not copy that.
C10_HOST_DEVICE inline RoiCells roi_cells(double x1, double y1, double x2, double y2, double spatial_scale,
                                          double expand_ratio, int64_t height, int64_t width) {
  const double w = static_cast<double>(width);
  const double h = static_cast<double>(height);
  const double bx0 = clip_to(floor(x1 * spatial_scale), w);
  const double bxe = clip_to(floor(x2 * spatial_scale) + 1.0, w);
  const double by0 = clip_to(floor(y1 * spatial_scale), h);
  const double bye = clip_to(floor(y2 * spatial_scale) + 1.0, h);
  RoiCells c{0, 0, 0, 0, 0, 0, 0, 0};
  if (!(bxe > bx0) || !(bye > by0)) {
    return c;
  }
  // Ring widths never need to exceed the map size; capping them keeps huge ratios finite.
  const double dx = fmin(floor((bxe - bx0) * expand_ratio), w);
  const double dy = fmin(floor((bye - by0) * expand_ratio), h);
  c.x0 = static_cast<int64_t>(bx0);
  c.xe = static_cast<int64_t>(bxe);
  c.y0 = static_cast<int64_t>(by0);
  c.ye = static_cast<int64_t>(bye);
  c.ex0 = static_cast<int64_t>(fmax(bx0 - dx, 0.0));
  c.exe = static_cast<int64_t>(fmin(bxe + dx, w));
  c.ey0 = static_cast<int64_t>(fmax(by0 - dy, 0.0));
  c.eye = static_cast<int64_t>(fmin(bye + dy, h));
  return c;
}

// Mask value of the ring (expanded box minus box) for a mode; the box itself is always 1.
C10_HOST_DEVICE inline int ring_value(int64_t mode) {
  return mode == kExpandedBinary ? 1 : (mode == kTernary ? -1 : 0);
}

// Mask value of cell (y, x): what a CUDA kernel evaluates per element.
C10_HOST_DEVICE inline int mask_value(const RoiCells& c, int64_t mode, int64_t y, int64_t x) {
  if (y >= c.y0 && y < c.ye && x >= c.x0 && x < c.xe) {
    return 1;
  }
  if (y >= c.ey0 && y < c.eye && x >= c.ex0 && x < c.exe) {
    return ring_value(mode);
  }
  return 0;
}

}  // namespace roi_masking
}  // namespace pysalient
