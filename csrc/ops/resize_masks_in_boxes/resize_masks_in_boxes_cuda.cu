// S4Net's test-time mask step on CUDA, the contract of resize_masks_in_boxes_cpu.cpp: every output pixel inside its
// mask's box takes the bilinear sample (align_corners=False) of the probability map cropped to the resized image
// and scaled to the original image, thresholded; every other pixel is 0.
//
// 1. taps: the two map taps of every output row and column (resize_masks_in_boxes_kernel.h, positions in double,
//    weights in the accumulation type), [H + W] entries shared by all masks.
// 2. resize: one thread per output pixel (grid-stride over N * H * W, consecutive threads on consecutive bytes of a
//    row): the pixel's box span is formed from the mask's double box; outside it the thread writes 0, inside it the
//    sample of the four taps in the CPU kernel's operation order (no FMA contraction), so both devices agree
//    exactly. No float buffer of the output size exists.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <limits>

#include "ops/checks.h"
#include "ops/cuda_utils.cuh"
#include "ops/resize_masks_in_boxes/resize_masks_in_boxes_checks.h"
#include "ops/resize_masks_in_boxes/resize_masks_in_boxes_kernel.h"

namespace pysalient {
namespace {

constexpr const char* kOp = "pysalient::resize_masks_in_boxes";

// Taps of the out_h output rows, then of the out_w output columns: index [out_h + out_w, 2], weight likewise.
template <typename acc_t>
__global__ void taps_kernel(double scale_y, int64_t h, int64_t out_h, double scale_x, int64_t w, int64_t out_w,
                            int32_t* __restrict__ index, acc_t* __restrict__ weight) {
  for (int64_t o = cuda::grid_start(); o < out_h + out_w; o += cuda::grid_stride()) {
    int64_t i0 = 0, i1 = 0;
    acc_t w0 = 0, w1 = 0;
    if (o < out_h) {
      resize_masks_in_boxes::bilinear_tap<acc_t>(scale_y, h, o, &i0, &i1, &w0, &w1);
    } else {
      resize_masks_in_boxes::bilinear_tap<acc_t>(scale_x, w, o - out_h, &i0, &i1, &w0, &w1);
    }
    index[2 * o] = static_cast<int32_t>(i0);
    index[2 * o + 1] = static_cast<int32_t>(i1);
    weight[2 * o] = w0;
    weight[2 * o + 1] = w1;
  }
}

// masks [N, out_h, out_w] uint8, every element written.
template <typename scalar_t, typename acc_t>
__global__ void resize_kernel(const scalar_t* __restrict__ probabilities, const double* __restrict__ boxes,
                              int64_t count, int64_t h, int64_t w, int64_t out_h, int64_t out_w,
                              const int32_t* __restrict__ index, const acc_t* __restrict__ weight, acc_t cut,
                              uint8_t* __restrict__ masks) {
  const int32_t* column_index = index + 2 * out_h;
  const acc_t* column_weight = weight + 2 * out_h;
  const int64_t total = count * out_h * out_w;
  for (int64_t i = cuda::grid_start(); i < total; i += cuda::grid_stride()) {
    const int64_t x = i % out_w;
    const int64_t row = i / out_w;
    const int64_t y = row % out_h;
    const int64_t m = row / out_h;
    const double* box = boxes + m * 4;
    int64_t x_first = 0, x_end = 0, y_first = 0, y_end = 0;
    resize_masks_in_boxes::box_span(box[0], box[2], out_w, &x_first, &x_end);
    resize_masks_in_boxes::box_span(box[1], box[3], out_h, &y_first, &y_end);
    uint8_t value = 0;
    if (x >= x_first && x < x_end && y >= y_first && y < y_end) {
      const scalar_t* map = probabilities + m * h * w;
      const scalar_t* top = map + static_cast<int64_t>(index[2 * y]) * w;
      const scalar_t* bottom = map + static_cast<int64_t>(index[2 * y + 1]) * w;
      const int64_t left = column_index[2 * x], right = column_index[2 * x + 1];
      const acc_t sample = resize_masks_in_boxes::bilinear_sample<acc_t>(
          static_cast<acc_t>(top[left]), static_cast<acc_t>(top[right]), static_cast<acc_t>(bottom[left]),
          static_cast<acc_t>(bottom[right]), weight[2 * y], weight[2 * y + 1], column_weight[2 * x],
          column_weight[2 * x + 1]);
      value = sample > cut ? 1 : 0;
    }
    masks[i] = value;
  }
}

at::Tensor resize_masks_in_boxes_cuda(const at::Tensor& probabilities, const at::Tensor& boxes,
                                      at::IntArrayRef padded_hw, at::IntArrayRef image_hw, at::IntArrayRef output_hw,
                                      double threshold) {
  resize_masks_in_boxes::check_arguments(probabilities, boxes, padded_hw, image_hw, output_hw, threshold, kOp,
                                         &check_cuda);
  constexpr int64_t kIntMax = std::numeric_limits<int32_t>::max();
  TORCH_CHECK(probabilities.size(1) < kIntMax && probabilities.size(2) < kIntMax && output_hw[0] < kIntMax &&
                  output_hw[1] < kIntMax,
              kOp, ": sizes must be below 2^31 - 1 on CUDA (32-bit taps), got probabilities ", probabilities.sizes(),
              " and output_hw ", output_hw);

  const c10::cuda::CUDAGuard guard(probabilities.device());
  const int64_t n = probabilities.size(0), h = probabilities.size(1), w = probabilities.size(2);
  const int64_t out_h = output_hw[0], out_w = output_hw[1];
  at::Tensor masks = at::empty({n, out_h, out_w}, probabilities.options().dtype(at::kByte));
  if (n == 0) {
    return masks;
  }
  const at::Tensor map = probabilities.contiguous();
  const at::Tensor box_values = boxes.to(at::kDouble).contiguous();
  const double scale_y = resize_masks_in_boxes::axis_scale(h, padded_hw[0], image_hw[0], out_h);
  const double scale_x = resize_masks_in_boxes::axis_scale(w, padded_hw[1], image_hw[1], out_w);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, map.scalar_type(), "resize_masks_in_boxes_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    // The comparison happens in the compute dtype, as `probabilities > threshold` does on a float32 tensor.
    const acc_t cut = static_cast<acc_t>(threshold);
    const at::ScalarType weight_type = map.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    at::Tensor index = at::empty({(out_h + out_w) * 2}, map.options().dtype(at::kInt));
    at::Tensor weight = at::empty({(out_h + out_w) * 2}, map.options().dtype(weight_type));
    taps_kernel<acc_t><<<cuda::blocks_for(out_h + out_w), cuda::kThreads, 0, stream>>>(
        scale_y, h, out_h, scale_x, w, out_w, index.data_ptr<int32_t>(), weight.data_ptr<acc_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    resize_kernel<scalar_t, acc_t><<<cuda::blocks_for(n * out_h * out_w), cuda::kThreads, 0, stream>>>(
        map.data_ptr<scalar_t>(), box_values.data_ptr<double>(), n, h, w, out_h, out_w, index.data_ptr<int32_t>(),
        weight.data_ptr<acc_t>(), cut, masks.data_ptr<uint8_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return masks;
}

}  // namespace

TORCH_LIBRARY_IMPL(pysalient, CUDA, m) { m.impl("resize_masks_in_boxes", &resize_masks_in_boxes_cuda); }

}  // namespace pysalient
