// Pillow-identical uint8 bilinear resize on CUDA, the contract of resize_image_cpu.cpp: separable passes (the
// first rounded to uint8), the pass order of resize_vertical_first, a pass skipped when its size does not change.
// The fixed-point tap tables are built on the device by the shared functions of resize_image_kernel.h (double
// arithmetic in Pillow's order; built with -fmad=false like the CPU's -ffp-contract=off, so every weight is the
// same integer), and the integer multiply-accumulate is exact: the output is bit-identical to the CPU (and Pillow).
#include <ATen/ATen.h>
#include <torch/library.h>

#include "ops/checks.h"
#include "ops/cuda_utils.cuh"
#include "ops/resize_image/resize_image_checks.h"
#include "ops/resize_image/resize_image_kernel.h"
#include "ops/resize_image/resize_image_passes.h"

namespace pysalient {
namespace {

constexpr const char* kOp = "pysalient::resize_image";

// Taps of one axis on the device: output sample i reads inputs first[i] .. first[i] + count[i] - 1 with weights
// weights[i * max_taps + t].
struct TapTable {
  int64_t max_taps;
  at::Tensor ranges;   // int64 [2, n_out]: first, then count
  at::Tensor weights;  // int32 [n_out, max_taps]
};

__global__ void tap_table_kernel(int64_t n_in, int64_t n_out, int64_t max_taps, int64_t* __restrict__ first,
                                 int64_t* __restrict__ count, int32_t* __restrict__ weights) {
  const ResizeAxis axis = make_resize_axis(n_in, n_out);
  for (int64_t i = cuda::grid_start(); i < n_out; i += cuda::grid_stride()) {
    const double center = resize_center(axis, i);
    int64_t begin = 0;
    int64_t end = 0;
    resize_tap_range(axis, center, n_in, &begin, &end);
    const int64_t taps = end > begin ? end - begin : 0;
    CUDA_KERNEL_ASSERT(taps <= max_taps);
    // Summed in tap order, then each weight divided by the sum: the order Pillow normalises in. The raw weights
    // are recomputed instead of stored (no per-thread array); they are the same doubles.
    double total = 0.0;
    for (int64_t t = 0; t < taps; ++t) {
      total += resize_tap_weight(axis, center, begin + t);
    }
    int32_t* row = weights + i * max_taps;
    for (int64_t t = 0; t < max_taps; ++t) {
      if (t < taps) {
        const double raw = resize_tap_weight(axis, center, begin + t);
        row[t] = resize_fixed_point(total != 0.0 ? raw / total : raw);
      } else {
        row[t] = 0;
      }
    }
    first[i] = begin;
    count[i] = taps;
  }
}

TapTable make_tap_table(int64_t n_in, int64_t n_out, const at::TensorOptions& options, cudaStream_t stream) {
  TapTable table;
  table.max_taps = resize_max_taps(make_resize_axis(n_in, n_out));
  table.ranges = at::empty({2, n_out}, options.dtype(at::kLong));
  table.weights = at::empty({n_out, table.max_taps}, options.dtype(at::kInt));
  int64_t* ranges = table.ranges.data_ptr<int64_t>();
  tap_table_kernel<<<cuda::blocks_for(n_out), cuda::kThreads, 0, stream>>>(n_in, n_out, table.max_taps, ranges,
                                                                           ranges + n_out,
                                                                           table.weights.data_ptr<int32_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return table;
}

// [rows, width, C] -> [rows, out_width, C], one thread per output sample.
__global__ void resize_rows_kernel(const uint8_t* __restrict__ input, uint8_t* __restrict__ output, int64_t total,
                                   int64_t width, int64_t out_width, int64_t channels, const int64_t* __restrict__ first,
                                   const int64_t* __restrict__ count, const int32_t* __restrict__ weights,
                                   int64_t max_taps) {
  for (int64_t index = cuda::grid_start(); index < total; index += cuda::grid_stride()) {
    const int64_t c = index % channels;
    const int64_t x = (index / channels) % out_width;
    const int64_t row = index / (channels * out_width);
    const uint8_t* window = input + (row * width + first[x]) * channels + c;
    const int32_t* w = weights + x * max_taps;
    int32_t accumulator = kResizeRounding;
    for (int64_t t = 0; t < count[x]; ++t) {
      accumulator += static_cast<int32_t>(window[t * channels]) * w[t];
    }
    output[index] = resize_to_uint8(accumulator);
  }
}

// [batch, height, row_length] -> [batch, out_height, row_length], one thread per output sample.
__global__ void resize_columns_kernel(const uint8_t* __restrict__ input, uint8_t* __restrict__ output, int64_t total,
                                      int64_t height, int64_t out_height, int64_t row_length,
                                      const int64_t* __restrict__ first, const int64_t* __restrict__ count,
                                      const int32_t* __restrict__ weights, int64_t max_taps) {
  for (int64_t index = cuda::grid_start(); index < total; index += cuda::grid_stride()) {
    const int64_t e = index % row_length;
    const int64_t y = (index / row_length) % out_height;
    const int64_t b = index / (row_length * out_height);
    const uint8_t* column = input + (b * height + first[y]) * row_length + e;
    const int32_t* w = weights + y * max_taps;
    int32_t accumulator = kResizeRounding;
    for (int64_t t = 0; t < count[y]; ++t) {
      accumulator += static_cast<int32_t>(column[t * row_length]) * w[t];
    }
    output[index] = resize_to_uint8(accumulator);
  }
}

void resize_rows(const at::Tensor& input, at::Tensor& output, int64_t rows, int64_t width, int64_t out_width,
                 int64_t channels, cudaStream_t stream) {
  const TapTable taps = make_tap_table(width, out_width, input.options(), stream);
  const int64_t total = rows * out_width * channels;
  const int64_t* ranges = taps.ranges.data_ptr<int64_t>();
  resize_rows_kernel<<<cuda::blocks_for(total), cuda::kThreads, 0, stream>>>(
      input.data_ptr<uint8_t>(), output.data_ptr<uint8_t>(), total, width, out_width, channels, ranges,
      ranges + out_width, taps.weights.data_ptr<int32_t>(), taps.max_taps);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

void resize_columns(const at::Tensor& input, at::Tensor& output, int64_t batch, int64_t height, int64_t out_height,
                    int64_t row_length, cudaStream_t stream) {
  const TapTable taps = make_tap_table(height, out_height, input.options(), stream);
  const int64_t total = batch * out_height * row_length;
  const int64_t* ranges = taps.ranges.data_ptr<int64_t>();
  resize_columns_kernel<<<cuda::blocks_for(total), cuda::kThreads, 0, stream>>>(
      input.data_ptr<uint8_t>(), output.data_ptr<uint8_t>(), total, height, out_height, row_length, ranges,
      ranges + out_height, taps.weights.data_ptr<int32_t>(), taps.max_taps);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

at::Tensor resize_image_cuda(const at::Tensor& image, int64_t out_h, int64_t out_w) {
  resize_image::check_arguments(image, out_h, out_w, kOp, &check_cuda);
  const c10::cuda::CUDAGuard guard(image.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  return resize_image::run_passes(
      image, out_h, out_w,
      [stream](const at::Tensor& input, at::Tensor& output, int64_t rows, int64_t width, int64_t out_width,
               int64_t channels) { resize_rows(input, output, rows, width, out_width, channels, stream); },
      [stream](const at::Tensor& input, at::Tensor& output, int64_t batch, int64_t height, int64_t out_height,
               int64_t row_length) { resize_columns(input, output, batch, height, out_height, row_length, stream); });
}

}  // namespace

TORCH_LIBRARY_IMPL(pysalient, CUDA, m) { m.impl("resize_image", &resize_image_cuda); }

}  // namespace pysalient
