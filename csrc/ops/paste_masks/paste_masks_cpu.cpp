// Pastes RoI mask probabilities into the image (detectron2 paste_masks_in_image): every image pixel takes the
// bilinear sample (align_corners=False, zero padding) of its box's mask at the pixel centre and is set when the
// sample reaches the threshold. Only the pixels where the sample can be non-zero are visited; rows of all masks
// run in parallel. With `legacy`, maskrcnn-benchmark's Masker instead (paste_masks_kernel.h).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "ops/checks.h"
#include "ops/paste_masks/paste_masks_checks.h"
#include "ops/paste_masks/paste_masks_kernel.h"

namespace pysalient {
namespace {

constexpr const char* kOp = "pysalient::paste_masks";

// Column taps of every pixel of a box's column support, computed once and reused by all its rows.
struct ColumnTaps {
  int64_t first = 0;
  int64_t end = 0;
  std::vector<int64_t> i0, i1;
  std::vector<double> w0, w1;
};

template <typename scalar_t>
void paste_masks_kernel(const at::Tensor& masks, const at::Tensor& boxes, int64_t height, int64_t width,
                        double threshold, at::Tensor& output) {
  const int64_t r_count = masks.size(0);
  const int64_t mh = masks.size(1);
  const int64_t mw = masks.size(2);
  const scalar_t* mask_data = masks.data_ptr<scalar_t>();
  const double* box_data = boxes.data_ptr<double>();
  uint8_t* out_data = output.data_ptr<uint8_t>();

  std::vector<uint8_t> valid(r_count, 0);
  std::vector<int64_t> row_first(r_count, 0), row_end(r_count, 0);
  std::vector<ColumnTaps> columns(r_count);
  at::parallel_for(0, r_count, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const double* box = box_data + r * 4;
      if (!paste_valid_extent(box[0], box[2]) || !paste_valid_extent(box[1], box[3])) {
        continue;
      }
      valid[r] = 1;
      paste_support(box[1], box[3], mh, height, &row_first[r], &row_end[r]);
      ColumnTaps& taps = columns[r];
      paste_support(box[0], box[2], mw, width, &taps.first, &taps.end);
      const int64_t count = taps.end - taps.first;
      taps.i0.resize(count);
      taps.i1.resize(count);
      taps.w0.resize(count);
      taps.w1.resize(count);
      for (int64_t k = 0; k < count; ++k) {
        paste_tap(taps.first + k, box[0], box[2] - box[0], mw, &taps.i0[k], &taps.i1[k], &taps.w0[k], &taps.w1[k]);
      }
    }
  });

  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, width));
  at::parallel_for(0, r_count * height, grain, [&](int64_t begin, int64_t end) {
    for (int64_t index = begin; index < end; ++index) {
      const int64_t r = index / height;
      const int64_t y = index % height;
      if (!valid[r] || y < row_first[r] || y >= row_end[r]) {
        continue;
      }
      const double* box = box_data + r * 4;
      int64_t y0 = 0, y1 = 0;
      double v0 = 0.0, v1 = 0.0;
      if (!paste_tap(y, box[1], box[3] - box[1], mh, &y0, &y1, &v0, &v1)) {
        continue;
      }
      const scalar_t* top = mask_data + (r * mh + y0) * mw;
      const scalar_t* bottom = mask_data + (r * mh + y1) * mw;
      const ColumnTaps& taps = columns[r];
      uint8_t* out_row = out_data + index * width + taps.first;
      // Locals, not reads through the closure or the vectors: a uint8_t store may alias any object, so those would
      // be reloaded after every output byte.
      const int64_t count = taps.end - taps.first;
      const int64_t* i0 = taps.i0.data();
      const int64_t* i1 = taps.i1.data();
      const double* w0 = taps.w0.data();
      const double* w1 = taps.w1.data();
      const double cut = threshold;
      for (int64_t k = 0; k < count; ++k) {
        const int64_t x0 = i0[k], x1 = i1[k];
        const double sample = v0 * (w0[k] * static_cast<double>(top[x0]) + w1[k] * static_cast<double>(top[x1])) +
                              v1 * (w0[k] * static_cast<double>(bottom[x0]) + w1[k] * static_cast<double>(bottom[x1]));
        out_row[k] = sample >= cut ? 1 : 0;
      }
    }
  });
}

// The Masker: one image row of one RoI at a time, only the columns its integer box covers.
template <typename scalar_t>
void paste_masks_legacy_kernel(const at::Tensor& masks, const at::Tensor& boxes, int64_t height, int64_t width,
                               double threshold, int64_t padding, at::Tensor& output) {
  const int64_t r_count = masks.size(0);
  const int64_t size = masks.size(1);
  const int64_t padded = size + 2 * padding;
  const float scale = legacy_scale(size, padding);
  const float cut = static_cast<float>(threshold);
  const scalar_t* mask_data = masks.data_ptr<scalar_t>();
  const float* box_data = boxes.data_ptr<float>();
  uint8_t* out_data = output.data_ptr<uint8_t>();

  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, width));
  at::parallel_for(0, r_count * height, grain, [&](int64_t begin, int64_t end) {
    std::vector<LegacyTap> column_taps;
    for (int64_t index = begin; index < end; ++index) {
      const int64_t r = index / height;
      const int64_t y = index % height;
      LegacyBox box;
      if (!legacy_box(box_data + r * 4, scale, &box) || y < box.y0 || y > box.y1) {
        continue;
      }
      const int64_t x_first = std::max<int64_t>(box.x0, 0);
      const int64_t x_end = std::min<int64_t>(box.x1 + 1, width);
      if (x_first >= x_end) {
        continue;
      }
      const scalar_t* mask = mask_data + r * size * size;
      // The zero-padded map, read in place.
      auto value = [&](int64_t row, int64_t column) -> float {
        const int64_t i = row - padding, j = column - padding;
        return (i >= 0 && i < size && j >= 0 && j < size) ? static_cast<float>(mask[i * size + j]) : 0.0f;
      };
      const bool four_tap = box.h + box.w <= 128;
      const LegacyTap ty = legacy_tap(y - box.y0, padded, box.h);
      uint8_t* out_row = out_data + index * width;
      for (int64_t x = x_first; x < x_end; ++x) {
        const LegacyTap tx = legacy_tap(x - box.x0, padded, box.w);
        const float sample = legacy_sample(value(ty.i0, tx.i0), value(ty.i0, tx.i1), value(ty.i1, tx.i0),
                                           value(ty.i1, tx.i1), ty, tx, four_tap);
        out_row[x] = sample > cut ? 1 : 0;
      }
    }
  });
}

at::Tensor paste_masks_cpu(const at::Tensor& masks, const at::Tensor& boxes, int64_t height, int64_t width,
                           double threshold, bool legacy, int64_t padding) {
  paste_masks::check_inputs(masks, boxes, height, width, threshold, legacy, padding, kOp, &check_cpu);

  at::Tensor output = at::zeros({masks.size(0), height, width}, masks.options().dtype(at::kByte));
  if (output.numel() == 0) {
    return output;
  }
  if (legacy) {
    const at::Tensor mask_values = masks.contiguous();
    // The Masker's boxes are float32; so is all its arithmetic.
    const at::Tensor box_values = boxes.to(at::kFloat).contiguous();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, mask_values.scalar_type(), "paste_masks_legacy_cpu", [&] {
      paste_masks_legacy_kernel<scalar_t>(mask_values, box_values, height, width, threshold, padding, output);
    });
    return output;
  }
  const at::Tensor mask_values = masks.contiguous();
  const at::Tensor box_values = boxes.to(at::kDouble).contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, mask_values.scalar_type(), "paste_masks_cpu", [&] {
    paste_masks_kernel<scalar_t>(mask_values, box_values, height, width, threshold, output);
  });
  return output;
}

}  // namespace

TORCH_LIBRARY_IMPL(pysalient, CPU, m) { m.impl("paste_masks", &paste_masks_cpu); }

}  // namespace pysalient
