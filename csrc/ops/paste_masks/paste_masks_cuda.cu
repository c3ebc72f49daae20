// Pastes RoI mask probabilities into the image on CUDA, the contract of paste_masks_cpu.cpp (detectron2's
// paste_masks_in_image): each pixel inside a box's support takes the bilinear sample (align_corners=False, zero
// padding) of the box's mask at the pixel centre and is set when the sample reaches the threshold.
//
// 1. taps: per RoI, the row taps of every image row and the column taps of every image column (paste_masks_kernel.h,
//    double precision as on the CPU), with the support tests of the CPU kernel folded in.
// 2. paste: one thread per output pixel writes its final uint8 value (0 outside the support) straight into the
//    [R, H, W] output; no float image-sized buffer exists. The sample is the CPU kernel's double expression, so the
//    masks are identical.
// With `legacy` (maskrcnn-benchmark's Masker), one kernel: each thread derives its RoI's integer box and its two
// taps with the float32 arithmetic of paste_masks_kernel.h, the CPU kernel's, so the masks are identical too.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <limits>

#include "ops/checks.h"
#include "ops/cuda_utils.cuh"
#include "ops/paste_masks/paste_masks_checks.h"
#include "ops/paste_masks/paste_masks_kernel.h"

namespace pysalient {
namespace {

constexpr const char* kOp = "pysalient::paste_masks";

// The two mask cells one image row (or column) reads and their weights; i0 < 0 marks a row/column whose pixels
// stay 0 (outside the box's support, an invalid box, or, for rows only, a tap with both weights zero).
struct Tap {
  double w0, w1;
  int32_t i0, i1;
};

// rows: [R, H], columns: [R, W]; boxes: [R, 4] double.
__global__ void taps_kernel(const double* __restrict__ boxes, int64_t count, int64_t mask_h, int64_t mask_w,
                            int64_t height, int64_t width, Tap* __restrict__ rows, Tap* __restrict__ columns) {
  const int64_t per_roi = height + width;
  const int64_t total = count * per_roi;
  for (int64_t index = cuda::grid_start(); index < total; index += cuda::grid_stride()) {
    const int64_t r = index / per_roi;
    const int64_t k = index % per_roi;
    const double* box = boxes + r * 4;
    const bool valid = paste_valid_extent(box[0], box[2]) && paste_valid_extent(box[1], box[3]);
    const bool is_row = k < height;
    // Rows read the y extent (box[1], box[3]) and the mask height; columns the x extent and the mask width.
    const double lo = is_row ? box[1] : box[0];
    const double hi = is_row ? box[3] : box[2];
    const int64_t m = is_row ? mask_h : mask_w;
    const int64_t pixel = is_row ? k : k - height;
    Tap tap{0.0, 0.0, -1, -1};
    if (valid) {
      int64_t first = 0, end = 0;
      paste_support(lo, hi, m, is_row ? height : width, &first, &end);
      if (pixel >= first && pixel < end) {
        int64_t i0 = 0, i1 = 0;
        const bool reads = paste_tap(pixel, lo, hi - lo, m, &i0, &i1, &tap.w0, &tap.w1);
        // The CPU kernel skips a row whose tap vanishes but evaluates every column of the support.
        if (reads || !is_row) {
          tap.i0 = static_cast<int32_t>(i0);
          tap.i1 = static_cast<int32_t>(i1);
        }
      }
    }
    if (is_row) {
      rows[r * height + pixel] = tap;
    } else {
      columns[r * width + pixel] = tap;
    }
  }
}

// masks: [R, Mh, Mw]; output: [R, H, W] uint8, every element written.
template <typename scalar_t>
__global__ void paste_kernel(const scalar_t* __restrict__ masks, const Tap* __restrict__ rows,
                             const Tap* __restrict__ columns, int64_t total, int64_t mask_h, int64_t mask_w,
                             int64_t height, int64_t width, double threshold, uint8_t* __restrict__ output) {
  for (int64_t index = cuda::grid_start(); index < total; index += cuda::grid_stride()) {
    const int64_t x = index % width;
    const int64_t ry = index / width;  // r * height + y
    const int64_t r = ry / height;
    uint8_t value = 0;
    const Tap row = rows[ry];
    if (row.i0 >= 0) {
      const Tap column = columns[r * width + x];
      if (column.i0 >= 0) {
        const scalar_t* top = masks + (r * mask_h + row.i0) * mask_w;
        const scalar_t* bottom = masks + (r * mask_h + row.i1) * mask_w;
        const double sample =
            row.w0 * (column.w0 * static_cast<double>(top[column.i0]) +
                      column.w1 * static_cast<double>(top[column.i1])) +
            row.w1 * (column.w0 * static_cast<double>(bottom[column.i0]) +
                      column.w1 * static_cast<double>(bottom[column.i1]));
        value = sample >= threshold ? 1 : 0;
      }
    }
    output[index] = value;
  }
}

// masks: [R, M, M]; boxes: [R, 4] float32; output: [R, H, W] uint8, every element written.
template <typename scalar_t>
__global__ void paste_legacy_kernel(const scalar_t* __restrict__ masks, const float* __restrict__ boxes,
                                    int64_t total, int64_t size, int64_t padding, float scale, int64_t height,
                                    int64_t width, float threshold, uint8_t* __restrict__ output) {
  const int64_t padded = size + 2 * padding;
  for (int64_t index = cuda::grid_start(); index < total; index += cuda::grid_stride()) {
    const int64_t x = index % width;
    const int64_t ry = index / width;
    const int64_t y = ry % height;
    const int64_t r = ry / height;
    uint8_t value = 0;
    LegacyBox box;
    if (legacy_box(boxes + r * 4, scale, &box) && y >= box.y0 && y <= box.y1 && x >= box.x0 && x <= box.x1) {
      const scalar_t* mask = masks + r * size * size;
      const LegacyTap ty = legacy_tap(y - box.y0, padded, box.h);
      const LegacyTap tx = legacy_tap(x - box.x0, padded, box.w);
      float v[4];
      const int64_t rows[2] = {ty.i0 - padding, ty.i1 - padding};
      const int64_t columns[2] = {tx.i0 - padding, tx.i1 - padding};
      for (int a = 0; a < 2; ++a) {
        for (int b = 0; b < 2; ++b) {
          const int64_t i = rows[a], j = columns[b];
          v[a * 2 + b] = (i >= 0 && i < size && j >= 0 && j < size) ? static_cast<float>(mask[i * size + j]) : 0.0f;
        }
      }
      value = legacy_sample(v[0], v[1], v[2], v[3], ty, tx, box.h + box.w <= 128) > threshold ? 1 : 0;
    }
    output[index] = value;
  }
}

at::Tensor paste_masks_legacy_cuda(const at::Tensor& masks, const at::Tensor& boxes, int64_t height, int64_t width,
                                   double threshold, int64_t padding) {
  const c10::cuda::CUDAGuard guard(masks.device());
  at::Tensor output = at::empty({masks.size(0), height, width}, masks.options().dtype(at::kByte));
  if (output.numel() == 0) {
    return output;
  }
  const at::Tensor mask_values = masks.contiguous();
  const at::Tensor box_values = boxes.to(at::kFloat).contiguous();
  const int64_t total = output.numel();
  const float scale = legacy_scale(masks.size(1), padding);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, mask_values.scalar_type(), "paste_masks_legacy_cuda", [&] {
    paste_legacy_kernel<scalar_t><<<cuda::blocks_for(total), cuda::kThreads, 0, stream>>>(
        mask_values.data_ptr<scalar_t>(), box_values.data_ptr<float>(), total, masks.size(1), padding, scale, height,
        width, static_cast<float>(threshold), output.data_ptr<uint8_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return output;
}

at::Tensor paste_masks_cuda(const at::Tensor& masks, const at::Tensor& boxes, int64_t height, int64_t width,
                            double threshold, bool legacy, int64_t padding) {
  paste_masks::check_inputs(masks, boxes, height, width, threshold, legacy, padding, kOp, &check_cuda);
  if (legacy) {
    return paste_masks_legacy_cuda(masks, boxes, height, width, threshold, padding);
  }
  // Mask cell indices are stored in 32 bits.
  TORCH_CHECK(masks.size(1) <= std::numeric_limits<int32_t>::max() &&
                  masks.size(2) <= std::numeric_limits<int32_t>::max(),
              kOp, ": masks larger than 2^31 - 1 cells per side are not supported on CUDA, got ", masks.sizes());

  const c10::cuda::CUDAGuard guard(masks.device());
  const int64_t count = masks.size(0), mask_h = masks.size(1), mask_w = masks.size(2);
  at::Tensor output = at::empty({count, height, width}, masks.options().dtype(at::kByte));
  if (output.numel() == 0) {
    return output;
  }
  const at::Tensor mask_values = masks.contiguous();
  const at::Tensor box_values = boxes.to(at::kDouble).contiguous();
  at::Tensor taps = at::empty({count * (height + width) * static_cast<int64_t>(sizeof(Tap))},
                              masks.options().dtype(at::kByte));
  Tap* rows = reinterpret_cast<Tap*>(taps.data_ptr<uint8_t>());
  Tap* columns = rows + count * height;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  taps_kernel<<<cuda::blocks_for(count * (height + width)), cuda::kThreads, 0, stream>>>(
      box_values.data_ptr<double>(), count, mask_h, mask_w, height, width, rows, columns);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  const int64_t total = output.numel();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, mask_values.scalar_type(), "paste_masks_cuda", [&] {
    paste_kernel<scalar_t><<<cuda::blocks_for(total), cuda::kThreads, 0, stream>>>(
        mask_values.data_ptr<scalar_t>(), rows, columns, total, mask_h, mask_w, height, width, threshold,
        output.data_ptr<uint8_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return output;
}

}  // namespace

TORCH_LIBRARY_IMPL(pysalient, CUDA, m) { m.impl("paste_masks", &paste_masks_cuda); }

}  // namespace pysalient
