// Math of Pillow's uint8 bilinear resize, shared by the CPU kernel and a future CUDA kernel.
//
// Pillow resamples separably; along one axis going from n_in to n_out samples the filter support is stretched
// by max(n_in / n_out, 1) so that downscaling averages every input sample (antialiasing), and the weights are
// quantised to 22-bit fixed point before the uint8 multiply-accumulate. Every double operation below keeps
// Pillow's order of evaluation (multiplying by the reciprocal of the filter scale, dividing by the weight sum,
// truncating casts) because a last-ulp difference can move a fixed-point weight by one and a pixel by one.
#pragma once

#include <c10/macros/Macros.h>

#include <cmath>
#include <cstdint>

namespace pysalient {

// Bits of the fixed-point weights: 32 - 8 (uint8 samples) - 2 (headroom for the accumulation).
constexpr int kResizePrecisionBits = 22;

struct ResizeAxis {
  double scale;            // n_in / n_out: input samples per output sample
  double support;          // half-width of the stretched triangle filter, in input samples
  double inverse_stretch;  // 1 / max(scale, 1): maps an input offset onto the unit triangle
};

C10_HOST_DEVICE inline ResizeAxis make_resize_axis(int64_t n_in, int64_t n_out) {
  ResizeAxis axis;
  axis.scale = static_cast<double>(n_in) / static_cast<double>(n_out);
  const double stretch = axis.scale < 1.0 ? 1.0 : axis.scale;
  axis.support = stretch;  // the bilinear (triangle) filter has support 1 before stretching
  axis.inverse_stretch = 1.0 / stretch;
  return axis;
}

// Largest number of input taps any output sample of this axis can use.
C10_HOST_DEVICE inline int64_t resize_max_taps(const ResizeAxis& axis) {
  return static_cast<int64_t>(std::ceil(axis.support)) * 2 + 1;
}

// Centre of output sample i in input coordinates (pixel centres at half-integers).
C10_HOST_DEVICE inline double resize_center(const ResizeAxis& axis, int64_t i) {
  return (static_cast<double>(i) + 0.5) * axis.scale;
}

// Input taps [*first, *end) of the output sample centred at `center`. The casts truncate toward zero as C's
// (int) does; the lower bound is clamped at 0 afterwards, which makes truncation and floor agree.
C10_HOST_DEVICE inline void resize_tap_range(const ResizeAxis& axis, double center, int64_t n_in, int64_t* first,
                                             int64_t* end) {
  int64_t lo = static_cast<int64_t>(center - axis.support + 0.5);
  int64_t hi = static_cast<int64_t>(center + axis.support + 0.5);
  *first = lo < 0 ? 0 : lo;
  *end = hi > n_in ? n_in : hi;
}

// Unnormalised triangle-filter weight of input sample j for the output sample centred at `center`.
C10_HOST_DEVICE inline double resize_tap_weight(const ResizeAxis& axis, double center, int64_t j) {
  double x = (static_cast<double>(j) - center + 0.5) * axis.inverse_stretch;
  if (x < 0.0) {
    x = -x;
  }
  return x < 1.0 ? 1.0 - x : 0.0;
}

// A normalised weight in [0, 1] as a 22-bit fixed-point integer, rounded half up.
C10_HOST_DEVICE inline int32_t resize_fixed_point(double weight) {
  return static_cast<int32_t>(0.5 + weight * static_cast<double>(1 << kResizePrecisionBits));
}

// Accumulator start value: adding half of the last unit makes the final shift round to nearest.
constexpr int32_t kResizeRounding = 1 << (kResizePrecisionBits - 1);

// Which pass runs first matters because the intermediate is rounded to uint8. Pillow runs the horizontal pass
// first, except (since Pillow 13, python-pillow/Pillow#9549) when the height shrinks by more than twice as many
// pixels as the width does; then the vertical pass runs first. Aspect-preserving downscales only take that
// branch for images more than twice as tall as wide.
C10_HOST_DEVICE inline bool resize_vertical_first(int64_t height, int64_t width, int64_t out_h, int64_t out_w) {
  return out_h < height && (height - out_h) > 2 * (width - out_w);
}

// Fixed-point accumulator (started at kResizeRounding) back to a uint8 sample.
C10_HOST_DEVICE inline uint8_t resize_to_uint8(int32_t accumulator) {
  const int32_t value = accumulator >> kResizePrecisionBits;
  return static_cast<uint8_t>(value < 0 ? 0 : (value > 255 ? 255 : value));
}

}  // namespace pysalient
