// S4Net's test-time mask step fused into one pass (resize_masks_in_boxes_kernel.h for the geometry): every output
// pixel inside its mask's box takes the bilinear sample (align_corners=False) of the probability map cropped to
// the resized image and scaled to the original image, and is set when the sample exceeds the threshold; all other
// pixels are 0. The taps of every output row and column are formed once for all masks (they do not depend on the
// box), the box spans once per mask; then one parallel region over (mask, output row) writes every output byte.
// No float buffer of the output size exists.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "ops/checks.h"
#include "ops/resize_masks_in_boxes/resize_masks_in_boxes_checks.h"
#include "ops/resize_masks_in_boxes/resize_masks_in_boxes_kernel.h"

namespace pysalient {
namespace {

constexpr const char* kOp = "pysalient::resize_masks_in_boxes";
// Output pixels one parallel task handles at least: smaller inputs run on the calling thread.
constexpr int64_t kGrainPixels = 32768;

// Taps of every output sample along one axis.
template <typename acc_t>
struct AxisTaps {
  std::vector<int64_t> i0, i1;
  std::vector<acc_t> w0, w1;
};

template <typename acc_t>
AxisTaps<acc_t> make_axis_taps(int64_t n_map, int64_t n_padded, int64_t n_image, int64_t n_out) {
  AxisTaps<acc_t> taps;
  taps.i0.resize(n_out);
  taps.i1.resize(n_out);
  taps.w0.resize(n_out);
  taps.w1.resize(n_out);
  const double scale = resize_masks_in_boxes::axis_scale(n_map, n_padded, n_image, n_out);
  for (int64_t o = 0; o < n_out; ++o) {
    resize_masks_in_boxes::bilinear_tap<acc_t>(scale, n_map, o, &taps.i0[o], &taps.i1[o], &taps.w0[o], &taps.w1[o]);
  }
  return taps;
}

// One output row: zeros before x_first and from x_end on, thresholded samples in between. Everything arrives by
// value: a uint8_t store may alias any object, so values read through a closure would be reloaded after every
// output byte.
template <typename scalar_t, typename acc_t>
void resize_row(const scalar_t* top, const scalar_t* bottom, const acc_t wy0, const acc_t wy1, const int64_t* x0,
                const int64_t* x1, const acc_t* wx0, const acc_t* wx1, const int64_t x_first, const int64_t x_end,
                const int64_t out_w, const acc_t cut, uint8_t* out_row) {
  std::memset(out_row, 0, static_cast<size_t>(x_first));
  for (int64_t x = x_first; x < x_end; ++x) {
    const int64_t left = x0[x], right = x1[x];
    const acc_t sample = resize_masks_in_boxes::bilinear_sample<acc_t>(
        static_cast<acc_t>(top[left]), static_cast<acc_t>(top[right]), static_cast<acc_t>(bottom[left]),
        static_cast<acc_t>(bottom[right]), wy0, wy1, wx0[x], wx1[x]);
    out_row[x] = sample > cut ? 1 : 0;
  }
  std::memset(out_row + x_end, 0, static_cast<size_t>(out_w - x_end));
}

template <typename scalar_t>
void resize_masks_in_boxes_kernel(const at::Tensor& probabilities, const at::Tensor& boxes, int64_t padded_h,
                                  int64_t padded_w, int64_t image_h, int64_t image_w, int64_t out_h, int64_t out_w,
                                  double threshold, at::Tensor& output) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t n = probabilities.size(0);
  const int64_t h = probabilities.size(1);
  const int64_t w = probabilities.size(2);
  const AxisTaps<acc_t> rows = make_axis_taps<acc_t>(h, padded_h, image_h, out_h);
  const AxisTaps<acc_t> cols = make_axis_taps<acc_t>(w, padded_w, image_w, out_w);

  // Box spans [x_first, x_end, y_first, y_end) per mask, from the double boxes.
  const double* box_data = boxes.data_ptr<double>();
  std::vector<int64_t> spans(n * 4);
  for (int64_t m = 0; m < n; ++m) {
    const double* box = box_data + m * 4;
    int64_t* span = spans.data() + m * 4;
    resize_masks_in_boxes::box_span(box[0], box[2], out_w, &span[0], &span[1]);
    resize_masks_in_boxes::box_span(box[1], box[3], out_h, &span[2], &span[3]);
  }

  // The comparison happens in the compute dtype, as `probabilities > threshold` does on a float32 tensor.
  const acc_t cut = static_cast<acc_t>(threshold);
  const scalar_t* map_data = probabilities.data_ptr<scalar_t>();
  uint8_t* out_data = output.data_ptr<uint8_t>();
  const int64_t grain = std::max<int64_t>(1, kGrainPixels / out_w);
  at::parallel_for(0, n * out_h, grain, [&](int64_t begin, int64_t end) {
    const int64_t* x0 = cols.i0.data();
    const int64_t* x1 = cols.i1.data();
    const acc_t* wx0 = cols.w0.data();
    const acc_t* wx1 = cols.w1.data();
    const int64_t width = out_w, height = out_h, map_h = h, map_w = w;
    for (int64_t index = begin; index < end; ++index) {
      const int64_t m = index / height;
      const int64_t y = index % height;
      const int64_t* span = spans.data() + m * 4;
      uint8_t* out_row = out_data + index * width;
      if (y < span[2] || y >= span[3] || span[0] >= span[1]) {
        std::memset(out_row, 0, static_cast<size_t>(width));
        continue;
      }
      const scalar_t* map = map_data + m * map_h * map_w;
      resize_row<scalar_t, acc_t>(map + rows.i0[y] * map_w, map + rows.i1[y] * map_w, rows.w0[y], rows.w1[y], x0, x1,
                                  wx0, wx1, span[0], span[1], width, cut, out_row);
    }
  });
}

at::Tensor resize_masks_in_boxes_cpu(const at::Tensor& probabilities, const at::Tensor& boxes,
                                     at::IntArrayRef padded_hw, at::IntArrayRef image_hw, at::IntArrayRef output_hw,
                                     double threshold) {
  resize_masks_in_boxes::check_arguments(probabilities, boxes, padded_hw, image_hw, output_hw, threshold, kOp,
                                         &check_cpu);
  const int64_t n = probabilities.size(0);
  // Every byte is written by the kernel (zeros outside the boxes).
  at::Tensor output = at::empty({n, output_hw[0], output_hw[1]}, probabilities.options().dtype(at::kByte));
  if (n == 0) {
    return output;
  }
  const at::Tensor map = probabilities.contiguous();
  const at::Tensor box_values = boxes.to(at::kDouble).contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, map.scalar_type(), "resize_masks_in_boxes_cpu", [&] {
    resize_masks_in_boxes_kernel<scalar_t>(map, box_values, padded_hw[0], padded_hw[1], image_hw[0], image_hw[1],
                                           output_hw[0], output_hw[1], threshold, output);
  });
  return output;
}

}  // namespace

TORCH_LIBRARY_IMPL(pysalient, CPU, m) { m.impl("resize_masks_in_boxes", &resize_masks_in_boxes_cpu); }

}  // namespace pysalient
