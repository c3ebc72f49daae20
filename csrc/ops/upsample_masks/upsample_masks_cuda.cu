// SparseInst's fused mask post-processing on CUDA, the contract of upsample_masks_cpu.cpp: sigmoid, bilinear to
// the padded size, crop to the image, bilinear to the output size, threshold, plus tight boxes and maskness.
//
// 1. taps: the composed 4-tap rows/columns of upsample_masks_kernel.h (same precision and order as the CPU).
// 2. probabilities: one block per mask writes sigmoid(logits) at decoder resolution ([N, h, w], the only float
//    buffer) and reduces the maskness sum/count with a fixed tree (deterministic; the CPU sums sequentially, so
//    the double sums may differ in the last bits before the cast to the output dtype).
// 3. resize: one block per (mask, output row) evaluates each output pixel from the 4 x 4 probabilities its taps
//    read, first along x (the CPU's half-resized row values) then along y, in the CPU kernel's operation order,
//    and writes the final uint8 mask directly: no [h, Wo] or [Ho, Wo] float buffer. Row/column extents of the set
//    pixels go through integer atomicMin/atomicMax (order independent, hence deterministic).
// 4. boxes: detectron2's (x_min, y_min, x_max + 1, y_max + 1), zeros for an empty mask.
// The sigmoid uses the device exp (within 2 ulp of the host's), so a probability can differ from the CPU's in the
// last bit; a mask pixel can then only differ where the interpolated value is within an ulp of the threshold.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include <limits>
#include <tuple>

#include "ops/checks.h"
#include "ops/cuda_utils.cuh"
#include "ops/upsample_masks/upsample_masks_checks.h"
#include "ops/upsample_masks/upsample_masks_kernel.h"

namespace pysalient {
namespace {

constexpr const char* kOp = "pysalient::upsample_masks";
constexpr int kResizeThreads = 128;

// Row taps of the n_rows output rows then column taps of the n_columns output columns: index [n, 4], weight [n, 4].
template <typename acc_t>
__global__ void taps_kernel(int64_t h, int64_t padded_h, int64_t image_h, int64_t out_h, int64_t w, int64_t padded_w,
                            int64_t image_w, int64_t out_w, int32_t* __restrict__ index, acc_t* __restrict__ weight) {
  for (int64_t o = cuda::grid_start(); o < out_h + out_w; o += cuda::grid_stride()) {
    int64_t taps[kUpsampleTaps];
    double weights[kUpsampleTaps];
    if (o < out_h) {
      composed_taps<acc_t>(h, padded_h, image_h, out_h, o, taps, weights);
    } else {
      composed_taps<acc_t>(w, padded_w, image_w, out_w, o - out_h, taps, weights);
    }
    for (int t = 0; t < kUpsampleTaps; ++t) {
      index[o * kUpsampleTaps + t] = static_cast<int32_t>(taps[t]);
      weight[o * kUpsampleTaps + t] = static_cast<acc_t>(weights[t]);
    }
  }
}

// One block per mask: probabilities [N, h*w], maskness [N]; also initialises the mask's extents
// (x_min, x_max, y_min, y_max) = (out_w, -1, out_h, -1) for the resize kernel.
template <typename scalar_t, typename acc_t>
__global__ void probability_kernel(const scalar_t* __restrict__ logits, int64_t count, int64_t plane, acc_t cut,
                                   int64_t out_h, int64_t out_w, acc_t* __restrict__ probabilities,
                                   acc_t* __restrict__ maskness, int32_t* __restrict__ extents) {
  __shared__ double sums[cuda::kThreads];
  __shared__ int64_t counts[cuda::kThreads];
  for (int64_t m = blockIdx.x; m < count; m += gridDim.x) {
    const scalar_t* src = logits + m * plane;
    acc_t* dst = probabilities + m * plane;
    double above_sum = 0.0;
    int64_t above_count = 0;
    for (int64_t k = threadIdx.x; k < plane; k += blockDim.x) {
      const acc_t p = mask_sigmoid<acc_t>(static_cast<acc_t>(src[k]));
      dst[k] = p;
      if (p > cut) {
        above_sum += static_cast<double>(p);
        ++above_count;
      }
    }
    above_sum = cuda::block_sum<double, cuda::kThreads>(above_sum, sums);
    above_count = cuda::block_sum<int64_t, cuda::kThreads>(above_count, counts);
    if (threadIdx.x == 0) {
      // Mask rescoring (SparseInst): mean probability of the pixels above threshold at decoder resolution.
      maskness[m] = static_cast<acc_t>(above_sum / (static_cast<double>(above_count) + 1e-6));
      extents[m * 4 + 0] = static_cast<int32_t>(out_w);
      extents[m * 4 + 1] = -1;
      extents[m * 4 + 2] = static_cast<int32_t>(out_h);
      extents[m * 4 + 3] = -1;
    }
    __syncthreads();  // the shared sums are rewritten by the next mask
  }
}

// One block per (mask, output row); masks [N, out_h, out_w] uint8, every element written.
template <typename acc_t>
__global__ void resize_kernel(const acc_t* __restrict__ probabilities, int64_t count, int64_t w, int64_t plane,
                              const int32_t* __restrict__ index, const acc_t* __restrict__ weight, int64_t out_h,
                              int64_t out_w, acc_t cut, uint8_t* __restrict__ masks, int32_t* __restrict__ extents) {
  __shared__ int row_first;
  __shared__ int row_last;
  const int32_t* column_index = index + out_h * kUpsampleTaps;
  const acc_t* column_weight = weight + out_h * kUpsampleTaps;
  for (int64_t pair = blockIdx.x; pair < count * out_h; pair += gridDim.x) {
    const int64_t m = pair / out_h;
    const int64_t y = pair % out_h;
    if (threadIdx.x == 0) {
      row_first = std::numeric_limits<int>::max();
      row_last = -1;
    }
    __syncthreads();
    const acc_t* p = probabilities + m * plane;
    const acc_t* rows[kUpsampleTaps];
    acc_t wy[kUpsampleTaps];
    for (int t = 0; t < kUpsampleTaps; ++t) {
      rows[t] = p + static_cast<int64_t>(index[y * kUpsampleTaps + t]) * w;
      wy[t] = weight[y * kUpsampleTaps + t];
    }
    uint8_t* out_row = masks + pair * out_w;
    int first = std::numeric_limits<int>::max();
    int last = -1;
    for (int64_t x = threadIdx.x; x < out_w; x += blockDim.x) {
      const int32_t* ix = column_index + x * kUpsampleTaps;
      const acc_t* wx = column_weight + x * kUpsampleTaps;
      acc_t across[kUpsampleTaps];
      for (int t = 0; t < kUpsampleTaps; ++t) {
        const acc_t* row = rows[t];
        across[t] = wx[0] * row[ix[0]] + wx[1] * row[ix[1]] + wx[2] * row[ix[2]] + wx[3] * row[ix[3]];
      }
      const acc_t value = wy[0] * across[0] + wy[1] * across[1] + wy[2] * across[2] + wy[3] * across[3];
      const bool set = value > cut;
      out_row[x] = set ? 1 : 0;
      if (set) {
        first = min(first, static_cast<int>(x));
        last = max(last, static_cast<int>(x));
      }
    }
    if (last >= 0) {
      atomicMin(&row_first, first);
      atomicMax(&row_last, last);
    }
    __syncthreads();
    if (threadIdx.x == 0 && row_last >= 0) {
      atomicMin(extents + m * 4 + 0, row_first);
      atomicMax(extents + m * 4 + 1, row_last);
      atomicMin(extents + m * 4 + 2, static_cast<int>(y));
      atomicMax(extents + m * 4 + 3, static_cast<int>(y));
    }
    __syncthreads();  // row_first/row_last are reset for the next pair
  }
}

template <typename acc_t>
__global__ void boxes_kernel(const int32_t* __restrict__ extents, int64_t count, acc_t* __restrict__ boxes) {
  for (int64_t m = cuda::grid_start(); m < count; m += cuda::grid_stride()) {
    const int32_t* e = extents + m * 4;
    acc_t* box = boxes + m * 4;
    if (e[3] < 0) {
      box[0] = box[1] = box[2] = box[3] = acc_t(0);
    } else {
      box[0] = static_cast<acc_t>(e[0]);
      box[1] = static_cast<acc_t>(e[2]);
      box[2] = static_cast<acc_t>(e[1] + 1);
      box[3] = static_cast<acc_t>(e[3] + 1);
    }
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> upsample_masks_cuda(const at::Tensor& mask_logits,
                                                                   at::IntArrayRef padded_hw, at::IntArrayRef image_hw,
                                                                   at::IntArrayRef output_hw, double threshold) {
  upsample_masks::check_arguments(mask_logits, padded_hw, image_hw, output_hw, kOp, &check_cuda);
  pysalient::check_mask_threshold(threshold, kOp);
  constexpr int64_t kIntMax = std::numeric_limits<int32_t>::max();
  TORCH_CHECK(mask_logits.size(1) < kIntMax && mask_logits.size(2) < kIntMax && output_hw[0] < kIntMax &&
                  output_hw[1] < kIntMax,
              kOp, ": sizes must be below 2^31 - 1 on CUDA (32-bit taps and extents), got mask_logits ",
              mask_logits.sizes(), " and output_hw ", output_hw);

  const c10::cuda::CUDAGuard guard(mask_logits.device());
  const int64_t n = mask_logits.size(0), h = mask_logits.size(1), w = mask_logits.size(2);
  const int64_t out_h = output_hw[0], out_w = output_hw[1];
  const at::ScalarType out_type = mask_logits.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor masks = at::empty({n, out_h, out_w}, mask_logits.options().dtype(at::kByte));
  at::Tensor boxes = at::empty({n, 4}, mask_logits.options().dtype(out_type));
  at::Tensor maskness = at::empty({n}, mask_logits.options().dtype(out_type));
  if (n == 0) {
    return {masks, boxes, maskness};
  }
  const at::Tensor logits = mask_logits.contiguous();
  const at::TensorOptions options = mask_logits.options();
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "upsample_masks_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    // The comparisons happen in the compute dtype, as `probabilities > threshold` does on a float32 tensor.
    const acc_t cut = static_cast<acc_t>(threshold);
    at::Tensor index = at::empty({(out_h + out_w) * kUpsampleTaps}, options.dtype(at::kInt));
    at::Tensor weight = at::empty({(out_h + out_w) * kUpsampleTaps}, options.dtype(out_type));
    at::Tensor probabilities = at::empty({n, h, w}, options.dtype(out_type));
    at::Tensor extents = at::empty({n, 4}, options.dtype(at::kInt));

    taps_kernel<acc_t><<<cuda::blocks_for(out_h + out_w), cuda::kThreads, 0, stream>>>(
        h, padded_hw[0], image_hw[0], out_h, w, padded_hw[1], image_hw[1], out_w, index.data_ptr<int32_t>(),
        weight.data_ptr<acc_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    const auto mask_blocks = static_cast<unsigned int>(std::min<int64_t>(n, int64_t{1} << 16));
    probability_kernel<scalar_t, acc_t><<<mask_blocks, cuda::kThreads, 0, stream>>>(
        logits.data_ptr<scalar_t>(), n, h * w, cut, out_h, out_w, probabilities.data_ptr<acc_t>(),
        maskness.data_ptr<acc_t>(), extents.data_ptr<int32_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    const auto row_blocks = static_cast<unsigned int>(std::min<int64_t>(n * out_h, int64_t{1} << 20));
    resize_kernel<acc_t><<<row_blocks, kResizeThreads, 0, stream>>>(
        probabilities.data_ptr<acc_t>(), n, w, h * w, index.data_ptr<int32_t>(), weight.data_ptr<acc_t>(), out_h,
        out_w, cut, masks.data_ptr<uint8_t>(), extents.data_ptr<int32_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    boxes_kernel<acc_t><<<cuda::blocks_for(n), cuda::kThreads, 0, stream>>>(extents.data_ptr<int32_t>(), n,
                                                                             boxes.data_ptr<acc_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {masks, boxes, maskness};
}

}  // namespace

TORCH_LIBRARY_IMPL(pysalient, CUDA, m) { m.impl("upsample_masks", &upsample_masks_cuda); }

}  // namespace pysalient
