// SparseInst's mask post-processing fused into one pass per mask (official inference code, hustvl/SparseInst):
// sigmoid, bilinear resize to the padded input size, crop to the resized image, bilinear resize to the output
// (original image) size, threshold; plus the tight box of each binary mask and the mask-rescoring "maskness".
// Per mask only an [h, w] probability map and an [h, Wo] half-resized buffer exist; output rows are formed,
// thresholded and scanned for the box on the fly.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>
#include <vector>

#include "ops/checks.h"
#include "ops/upsample_masks/upsample_masks_checks.h"
#include "ops/upsample_masks/upsample_masks_kernel.h"

namespace pysalient {
namespace {

constexpr const char* kOp = "pysalient::upsample_masks";

// Composed taps of every output sample of one axis, weights in the accumulation type.
template <typename acc_t>
struct AxisTaps {
  std::vector<int64_t> index;  // [n_out, kUpsampleTaps]
  std::vector<acc_t> weight;   // [n_out, kUpsampleTaps]
};

template <typename acc_t>
AxisTaps<acc_t> make_axis_taps(int64_t n_in, int64_t n_padded, int64_t n_image, int64_t n_out) {
  AxisTaps<acc_t> taps;
  taps.index.resize(n_out * kUpsampleTaps);
  taps.weight.resize(n_out * kUpsampleTaps);
  for (int64_t o = 0; o < n_out; ++o) {
    double weight[kUpsampleTaps];
    // Source positions are computed in the precision interpolate uses for this dtype (float unless double).
    composed_taps<acc_t>(n_in, n_padded, n_image, n_out, o, &taps.index[o * kUpsampleTaps], weight);
    for (int t = 0; t < kUpsampleTaps; ++t) {
      taps.weight[o * kUpsampleTaps + t] = static_cast<acc_t>(weight[t]);
    }
  }
  return taps;
}

// Geometry of one call: decoder-resolution masks [h, w] -> output [out_h, out_w], plus the composed taps.
template <typename acc_t>
struct MaskGeometry {
  int64_t h, w, out_h, out_w;
  const int64_t* x_index;   // [out_w, kUpsampleTaps] input column of each tap
  const acc_t* x_weight;    // [out_w, kUpsampleTaps]
  const int64_t* y_index;   // [out_h, kUpsampleTaps] half-resized row of each tap
  const acc_t* y_weight;    // [out_h, kUpsampleTaps]
  const uint8_t* row_used;  // [h] rows some output row reads
};

// One mask: sigmoid + maskness, horizontal pass into half_resized [h, out_w], vertical pass + threshold into
// mask [out_h, out_w] with the tight box. Everything arrives by value: a uint8_t store may alias any object, so
// sizes and the threshold read through a closure (at::parallel_for's lambda) would be reloaded after every
// output byte, which halved the speed of the vertical pass.
template <typename scalar_t, typename acc_t>
void upsample_one_mask(const scalar_t* src, const MaskGeometry<acc_t> g, const acc_t cut, acc_t* probability,
                       acc_t* half_resized, uint8_t* mask, acc_t* box, acc_t* maskness) {
  const int64_t h = g.h, w = g.w, out_h = g.out_h, out_w = g.out_w;
  // Mask rescoring (SparseInst): mean probability of the pixels above threshold at decoder resolution.
  double above_sum = 0.0;
  int64_t above_count = 0;
  for (int64_t k = 0; k < h * w; ++k) {
    const acc_t p = mask_sigmoid<acc_t>(static_cast<acc_t>(src[k]));
    probability[k] = p;
    if (p > cut) {
      above_sum += static_cast<double>(p);
      ++above_count;
    }
  }
  *maskness = static_cast<acc_t>(above_sum / (static_cast<double>(above_count) + 1e-6));

  for (int64_t y = 0; y < h; ++y) {
    if (!g.row_used[y]) {
      continue;
    }
    const acc_t* in_row = probability + y * w;
    acc_t* out_row = half_resized + y * out_w;
    for (int64_t x = 0; x < out_w; ++x) {
      const int64_t* idx = g.x_index + x * kUpsampleTaps;
      const acc_t* wt = g.x_weight + x * kUpsampleTaps;
      out_row[x] = wt[0] * in_row[idx[0]] + wt[1] * in_row[idx[1]] + wt[2] * in_row[idx[2]] + wt[3] * in_row[idx[3]];
    }
  }

  int64_t x_min = out_w, x_max = -1, y_min = out_h, y_max = -1;
  for (int64_t y = 0; y < out_h; ++y) {
    const int64_t* idx = g.y_index + y * kUpsampleTaps;
    const acc_t* wt = g.y_weight + y * kUpsampleTaps;
    const acc_t w0 = wt[0], w1 = wt[1], w2 = wt[2], w3 = wt[3];
    const acc_t* r0 = half_resized + idx[0] * out_w;
    const acc_t* r1 = half_resized + idx[1] * out_w;
    const acc_t* r2 = half_resized + idx[2] * out_w;
    const acc_t* r3 = half_resized + idx[3] * out_w;
    uint8_t* out_row = mask + y * out_w;
    for (int64_t x = 0; x < out_w; ++x) {
      const acc_t value = w0 * r0[x] + w1 * r1[x] + w2 * r2[x] + w3 * r3[x];
      out_row[x] = value > cut ? 1 : 0;
    }
    int64_t first = 0;
    while (first < out_w && !out_row[first]) {
      ++first;
    }
    if (first == out_w) {
      continue;
    }
    int64_t last = out_w - 1;
    while (!out_row[last]) {
      --last;
    }
    x_min = std::min(x_min, first);
    x_max = std::max(x_max, last);
    y_min = std::min(y_min, y);
    y_max = y;
  }
  // detectron2 BitMasks.get_bounding_boxes: (x_min, y_min, x_max + 1, y_max + 1); zeros for an empty mask.
  if (y_max < 0) {
    box[0] = box[1] = box[2] = box[3] = 0;
  } else {
    box[0] = static_cast<acc_t>(x_min);
    box[1] = static_cast<acc_t>(y_min);
    box[2] = static_cast<acc_t>(x_max + 1);
    box[3] = static_cast<acc_t>(y_max + 1);
  }
}

template <typename scalar_t>
void upsample_masks_kernel(const at::Tensor& logits, int64_t padded_h, int64_t padded_w, int64_t image_h,
                           int64_t image_w, int64_t out_h, int64_t out_w, double threshold, at::Tensor& masks,
                           at::Tensor& boxes, at::Tensor& maskness) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t n = logits.size(0);
  const int64_t h = logits.size(1);
  const int64_t w = logits.size(2);
  const AxisTaps<acc_t> rows_taps = make_axis_taps<acc_t>(h, padded_h, image_h, out_h);
  const AxisTaps<acc_t> cols_taps = make_axis_taps<acc_t>(w, padded_w, image_w, out_w);
  // Input rows no output row reads (the padding, or rows skipped when shrinking) need no horizontal pass.
  std::vector<uint8_t> row_used(h, 0);
  for (const int64_t index : rows_taps.index) {
    row_used[index] = 1;
  }
  const MaskGeometry<acc_t> geometry{h,
                                     w,
                                     out_h,
                                     out_w,
                                     cols_taps.index.data(),
                                     cols_taps.weight.data(),
                                     rows_taps.index.data(),
                                     rows_taps.weight.data(),
                                     row_used.data()};

  // The comparisons happen in the compute dtype, as `probabilities > threshold` does on a float32 tensor.
  const acc_t cut = static_cast<acc_t>(threshold);
  const scalar_t* logits_data = logits.data_ptr<scalar_t>();
  uint8_t* masks_data = masks.data_ptr<uint8_t>();
  acc_t* boxes_data = boxes.data_ptr<acc_t>();
  acc_t* maskness_data = maskness.data_ptr<acc_t>();

  at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> probability(h * w);
    std::vector<acc_t> half_resized(h * out_w);
    for (int64_t m = begin; m < end; ++m) {
      upsample_one_mask<scalar_t, acc_t>(logits_data + m * h * w, geometry, cut, probability.data(),
                                         half_resized.data(), masks_data + m * out_h * out_w, boxes_data + m * 4,
                                         maskness_data + m);
    }
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> upsample_masks_cpu(const at::Tensor& mask_logits,
                                                                  at::IntArrayRef padded_hw, at::IntArrayRef image_hw,
                                                                  at::IntArrayRef output_hw, double threshold) {
  upsample_masks::check_arguments(mask_logits, padded_hw, image_hw, output_hw, kOp, &check_cpu);
  pysalient::check_mask_threshold(threshold, kOp);

  const int64_t n = mask_logits.size(0);
  const at::ScalarType out_type = mask_logits.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor masks = at::empty({n, output_hw[0], output_hw[1]}, mask_logits.options().dtype(at::kByte));
  at::Tensor boxes = at::empty({n, 4}, mask_logits.options().dtype(out_type));
  at::Tensor maskness = at::empty({n}, mask_logits.options().dtype(out_type));
  if (n == 0) {
    return {masks, boxes, maskness};
  }
  const at::Tensor logits = mask_logits.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "upsample_masks_cpu", [&] {
    upsample_masks_kernel<scalar_t>(logits, padded_hw[0], padded_hw[1], image_hw[0], image_hw[1], output_hw[0],
                                    output_hw[1], threshold, masks, boxes, maskness);
  });
  return {masks, boxes, maskness};
}

}  // namespace

TORCH_LIBRARY_IMPL(pysalient, CPU, m) { m.impl("upsample_masks", &upsample_masks_cpu); }

}  // namespace pysalient
