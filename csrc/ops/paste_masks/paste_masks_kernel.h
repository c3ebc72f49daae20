// Math of mask pasting (detectron2 paste_masks_in_image semantics), shared by the CPU kernel and a future CUDA
// kernel.
//
// Image pixel x (centre x + 0.5) of a box [lo, lo + extent) reads the RoI mask of m cells at
//   u = (x + 0.5 - lo) / extent * m - 0.5,
// which is grid_sample(align_corners=False) at the normalised coordinate 2 * (x + 0.5 - lo) / extent - 1.
// Bilinear interpolation with zero padding makes the sample vanish unless -1 < u < m; positions are kept in
// double because image coordinates reach thousands of pixels while a mask cell can be a fraction of one.
#pragma once

#include <c10/macros/Macros.h>

#include <cmath>
#include <cstdint>

namespace pysalient {

// The two mask cells pixel `pixel` reads along one axis and their weights, already zero for cells outside
// [0, m) (zero padding). Returns false when both weights vanish. Indices are clamped into [0, m) so that a
// zero-weight tap never reads outside the mask.
C10_HOST_DEVICE inline bool paste_tap(int64_t pixel, double lo, double extent, int64_t m, int64_t* i0, int64_t* i1,
                                      double* w0, double* w1) {
  const double u = (static_cast<double>(pixel) + 0.5 - lo) / extent * static_cast<double>(m) - 0.5;
  if (!(u > -1.0 && u < static_cast<double>(m))) {  // also rejects NaN
    *i0 = *i1 = 0;
    *w0 = *w1 = 0.0;
    return false;
  }
  const double base = std::floor(u);
  const double frac = u - base;
  const int64_t cell = static_cast<int64_t>(base);
  *w0 = cell >= 0 ? 1.0 - frac : 0.0;
  *w1 = cell + 1 < m ? frac : 0.0;
  *i0 = cell >= 0 ? cell : 0;
  *i1 = cell + 1 < m ? cell + 1 : m - 1;
  return true;
}

// Conservative pixel range [*first, *end) of one axis outside which every sample is exactly zero, clipped to
// [0, size). With cells wider than a pixel the bilinear tail reaches half a cell beyond the box.
C10_HOST_DEVICE inline void paste_support(double lo, double hi, int64_t m, int64_t size, int64_t* first,
                                          int64_t* end) {
  const double half_cell = 0.5 * (hi - lo) / static_cast<double>(m);
  double a = std::floor(lo - 0.5 - half_cell) - 1.0;
  double b = std::ceil(hi - 0.5 + half_cell) + 2.0;
  const double limit = static_cast<double>(size);
  a = a < 0.0 ? 0.0 : (a > limit ? limit : a);
  b = b < 0.0 ? 0.0 : (b > limit ? limit : b);
  *first = static_cast<int64_t>(a);
  *end = static_cast<int64_t>(b);
}

// Whether a box side is usable: finite ends and a strictly positive extent (else the mask is all zero).
C10_HOST_DEVICE inline bool paste_valid_extent(double lo, double hi) {
  return std::isfinite(lo) && std::isfinite(hi) && hi > lo;
}

}  // namespace pysalient
