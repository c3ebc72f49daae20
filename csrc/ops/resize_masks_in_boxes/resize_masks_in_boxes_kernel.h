// Geometry of resize_masks_in_boxes (S4Net's test-time mask step), shared by the CPU and the CUDA kernel.
//
// The probability map [h, w] covers the padded network input [Hp, Wp]; the resized image is its top-left
// [hi, wi]; the output is the original image [H, W]. One bilinear resize (align_corners=False) maps output row y
// to the map coordinate sy = (y + 0.5) * scale - 0.5 with scale = (hi / H) * (h / Hp), clamped below at 0 as
// torch.nn.functional.interpolate does (likewise columns). Positions and weights are formed in double; the
// weights are then rounded to the accumulation type (float for half/bfloat16/float inputs, double for double).
#pragma once

#include <c10/macros/Macros.h>

#include <cmath>
#include <cstdint>

namespace pysalient {
namespace resize_masks_in_boxes {

// Map samples per output sample along one axis: (n_image / n_out) * (n_map / n_padded), in double.
inline double axis_scale(int64_t n_map, int64_t n_padded, int64_t n_image, int64_t n_out) {
  return (static_cast<double>(n_image) / static_cast<double>(n_out)) *
         (static_cast<double>(n_map) / static_cast<double>(n_padded));
}

// The two map taps of output sample o: lower index floor(s), upper min(lower + 1, n_map - 1), weights 1 - l and
// l = s - lower (the lower weight is formed in acc_t from the rounded upper one, as interpolate does).
template <typename acc_t>
C10_HOST_DEVICE inline void bilinear_tap(double scale, int64_t n_map, int64_t o, int64_t* i0, int64_t* i1, acc_t* w0,
                                         acc_t* w1) {
  double source = (static_cast<double>(o) + 0.5) * scale - 0.5;
  if (source < 0.0) {
    source = 0.0;
  }
  int64_t lower = static_cast<int64_t>(std::floor(source));
  if (lower > n_map - 1) {
    lower = n_map - 1;
  }
  const acc_t lambda = static_cast<acc_t>(source - static_cast<double>(lower));
  *i0 = lower;
  *i1 = lower < n_map - 1 ? lower + 1 : lower;
  *w1 = lambda;
  *w0 = static_cast<acc_t>(1) - lambda;
}

// Pixels [*first, *end) covered by a box side [lo, hi] along an axis of n pixels: floor(lo) <= i < floor(hi) + 1
// (the official int() cut with its +1 end), clipped to [0, n). NaN coordinates and inverted sides give an empty
// range; infinite ones clip to the border.
C10_HOST_DEVICE inline void box_span(double lo, double hi, int64_t n, int64_t* first, int64_t* end) {
  *first = 0;
  *end = 0;
  if (std::isnan(lo) || std::isnan(hi)) {
    return;
  }
  const double size = static_cast<double>(n);
  double begin = std::floor(lo);
  double stop = std::floor(hi) + 1.0;
  begin = begin < 0.0 ? 0.0 : (begin > size ? size : begin);
  stop = stop < 0.0 ? 0.0 : (stop > size ? size : stop);
  if (stop > begin) {
    *first = static_cast<int64_t>(begin);
    *end = static_cast<int64_t>(stop);
  }
}

// The bilinear sample from the four taps, in this operation order on every device (and in the reference).
template <typename acc_t>
C10_HOST_DEVICE inline acc_t bilinear_sample(acc_t top_left, acc_t top_right, acc_t bottom_left, acc_t bottom_right,
                                             acc_t wy0, acc_t wy1, acc_t wx0, acc_t wx1) {
  return wy0 * (wx0 * top_left + wx1 * top_right) + wy1 * (wx0 * bottom_left + wx1 * bottom_right);
}

}  // namespace resize_masks_in_boxes
}  // namespace pysalient
