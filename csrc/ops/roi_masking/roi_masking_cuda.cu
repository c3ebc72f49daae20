// S4Net's RoIMasking on CUDA, the same contract as roi_masking_cpu.cpp: out[r] = features[b_r] * mask_r with the
// mask of roi_masking_kernel.h, evaluated per element (no [R, H, W] mask is stored). The RoI geometry is computed
// once per RoI on the device, in double precision as on the CPU.
//
// Backward (deterministic, no atomics): one thread per element of grad_features [B, C, H, W] adds the masked
// gradients of the RoIs of its image in increasing RoI index order (a stable sort of the batch indices), the
// order of the CPU kernel, so both give the same bits.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include <cmath>

#include "ops/checks.h"
#include "ops/cuda_utils.cuh"
#include "ops/roi_masking/roi_masking_checks.h"
#include "ops/roi_masking/roi_masking_kernel.h"

namespace pysalient {
namespace {

constexpr const char* kOp = "pysalient::roi_masking";
constexpr const char* kBackwardOp = "pysalient::_roi_masking_backward";

using roi_masking::RoiCells;
static_assert(sizeof(RoiCells) == 8 * sizeof(int64_t), "RoiCells is stored in an int64 [R, 8] tensor");

// ------------------------------------------------------------------------------------------------ kernels
template <typename scalar_t>
__global__ void geometry_kernel(const scalar_t* __restrict__ rois, int64_t num_rois, double spatial_scale,
                                double expand_ratio, int64_t height, int64_t width, RoiCells* __restrict__ cells,
                                int64_t* __restrict__ batch) {
  for (int64_t r = cuda::grid_start(); r < num_rois; r += cuda::grid_stride()) {
    const scalar_t* roi = rois + 5 * r;
    // Widening to double is exact for every floating dtype, as rois.to(kDouble) on the CPU.
    batch[r] = static_cast<int64_t>(static_cast<double>(roi[0]));
    cells[r] = roi_masking::roi_cells(static_cast<double>(roi[1]), static_cast<double>(roi[2]),
                                      static_cast<double>(roi[3]), static_cast<double>(roi[4]), spatial_scale,
                                      expand_ratio, height, width);
  }
}

// output [R, C, H, W]; every element is written, masked cells too (features * 0 keeps NaN/inf propagation).
template <typename scalar_t>
__global__ void forward_kernel(const scalar_t* __restrict__ features, const RoiCells* __restrict__ cells,
                               const int64_t* __restrict__ batch, int64_t mode, int64_t total, int64_t channels,
                               int64_t height, int64_t width, scalar_t* __restrict__ output) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int64_t plane = height * width;
  for (int64_t index = cuda::grid_start(); index < total; index += cuda::grid_stride()) {
    const int64_t x = index % width;
    const int64_t y = (index / width) % height;
    const int64_t rc = index / plane;
    const int64_t c = rc % channels;
    const int64_t r = rc / channels;
    const opmath_t value = static_cast<opmath_t>(roi_masking::mask_value(cells[r], mode, y, x));
    const scalar_t source = features[(batch[r] * channels + c) * plane + y * width + x];
    output[index] = static_cast<scalar_t>(static_cast<opmath_t>(source) * value);
  }
}

// grad_features [B, C, H, W]: members lists the RoIs sorted by image (increasing index inside an image), the
// RoIs of image b are members[first[b] .. first[b + 1]).
template <typename scalar_t>
__global__ void backward_kernel(const scalar_t* __restrict__ grad_output, const RoiCells* __restrict__ cells,
                                const int64_t* __restrict__ members, const int64_t* __restrict__ first, int64_t mode,
                                int64_t total, int64_t channels, int64_t height, int64_t width,
                                scalar_t* __restrict__ grad_features) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int64_t plane = height * width;
  for (int64_t index = cuda::grid_start(); index < total; index += cuda::grid_stride()) {
    const int64_t x = index % width;
    const int64_t y = (index / width) % height;
    const int64_t bc = index / plane;
    const int64_t c = bc % channels;
    const int64_t b = bc / channels;
    opmath_t sum = opmath_t(0);
    for (int64_t m = first[b]; m < first[b + 1]; ++m) {
      const int64_t r = members[m];
      const int value = roi_masking::mask_value(cells[r], mode, y, x);
      if (value == 0) {
        continue;
      }
      const opmath_t g = static_cast<opmath_t>(grad_output[((r * channels + c) * height + y) * width + x]);
      if (value > 0) {
        sum += g;
      } else {
        sum -= g;
      }
    }
    grad_features[index] = static_cast<scalar_t>(sum);
  }
}

// ------------------------------------------------------------------------------------------------ host side
// Per-RoI batch index [R] and cells [R, 8] (RoiCells), computed on the device of rois.
std::pair<at::Tensor, at::Tensor> roi_geometry(const at::Tensor& rois, double spatial_scale, double expand_ratio,
                                               int64_t height, int64_t width) {
  const int64_t num_rois = rois.size(0);
  const at::Tensor values = rois.contiguous();
  at::Tensor batch = at::empty({num_rois}, rois.options().dtype(at::kLong));
  at::Tensor cells = at::empty({num_rois, 8}, rois.options().dtype(at::kLong));
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, values.scalar_type(), "roi_masking_geometry_cuda", [&] {
    geometry_kernel<scalar_t><<<cuda::blocks_for(num_rois), cuda::kThreads, 0, stream>>>(
        values.data_ptr<scalar_t>(), num_rois, spatial_scale, expand_ratio, height, width,
        reinterpret_cast<RoiCells*>(cells.data_ptr<int64_t>()), batch.data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {batch, cells};
}

at::Tensor roi_masking_cuda(const at::Tensor& features, const at::Tensor& rois, double spatial_scale,
                            double expand_ratio, int64_t mode) {
  roi_masking::check_forward(features, rois, spatial_scale, expand_ratio, mode, kOp, &check_cuda);
  const c10::cuda::CUDAGuard guard(features.device());
  const int64_t num_rois = rois.size(0);
  const int64_t channels = features.size(1), height = features.size(2), width = features.size(3);
  at::Tensor output = at::empty({num_rois, channels, height, width}, features.options());
  if (output.numel() == 0) {
    return output;
  }
  const auto geometry = roi_geometry(rois, spatial_scale, expand_ratio, height, width);
  const at::Tensor input = features.contiguous();
  const int64_t total = output.numel();
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "roi_masking_cuda", [&] {
    forward_kernel<scalar_t><<<cuda::blocks_for(total), cuda::kThreads, 0, stream>>>(
        input.data_ptr<scalar_t>(), reinterpret_cast<const RoiCells*>(geometry.second.data_ptr<int64_t>()),
        geometry.first.data_ptr<int64_t>(), mode, total, channels, height, width, output.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return output;
}

at::Tensor roi_masking_backward_cuda(const at::Tensor& grad_output, const at::Tensor& rois, double spatial_scale,
                                     double expand_ratio, int64_t mode, int64_t batch_size) {
  roi_masking::check_backward(grad_output, rois, spatial_scale, expand_ratio, mode, batch_size, kBackwardOp,
                              &check_cuda);
  const c10::cuda::CUDAGuard guard(grad_output.device());
  const int64_t channels = grad_output.size(1), height = grad_output.size(2), width = grad_output.size(3);
  if (grad_output.numel() == 0 || batch_size * channels * height * width == 0) {
    return at::zeros({batch_size, channels, height, width}, grad_output.options());
  }
  // Every element is written by the kernel, images without RoIs included.
  at::Tensor grad_features = at::empty({batch_size, channels, height, width}, grad_output.options());
  const auto geometry = roi_geometry(rois, spatial_scale, expand_ratio, height, width);
  // A stable sort keeps increasing RoI indices inside an image; first[b] = number of RoIs of images < b.
  const auto sorted = at::sort(geometry.first, /*stable=*/true, /*dim=*/0, /*descending=*/false);
  const at::Tensor members = std::get<1>(sorted).contiguous();
  const at::Tensor first =
      at::searchsorted(std::get<0>(sorted).contiguous(), at::arange(batch_size + 1, geometry.first.options()));
  const at::Tensor grad = grad_output.contiguous();
  const int64_t total = grad_features.numel();
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "roi_masking_backward_cuda", [&] {
    backward_kernel<scalar_t><<<cuda::blocks_for(total), cuda::kThreads, 0, stream>>>(
        grad.data_ptr<scalar_t>(), reinterpret_cast<const RoiCells*>(geometry.second.data_ptr<int64_t>()),
        members.data_ptr<int64_t>(), first.data_ptr<int64_t>(), mode, total, channels, height, width,
        grad_features.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grad_features;
}

}  // namespace

TORCH_LIBRARY_IMPL(pysalient, CUDA, m) {
  m.impl("roi_masking", &roi_masking_cuda);
  m.impl("_roi_masking_backward", &roi_masking_backward_cuda);
}

}  // namespace pysalient
