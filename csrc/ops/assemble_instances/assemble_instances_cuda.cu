// InstanceFCN's assembling module on CUDA, the same contract as assemble_instances_cpu.cpp: out[r, i, j] =
// score_maps[b, channel(i, j), y0 + i, x0 + j], zero where the window leaves the map.
//
// Backward (deterministic, no atomics): windows overlap, so instead of scattering, one thread per element of
// grad_maps [B, k*k, H, W] gathers the window cells that read it, visiting the windows of its image in increasing
// index order (a stable sort of the batch indices), the order of the CPU kernel, so both give the same bits.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "ops/assemble_instances/assemble_instances_checks.h"
#include "ops/assemble_instances/assemble_instances_kernel.h"
#include "ops/checks.h"
#include "ops/cuda_utils.cuh"

namespace pysalient {
namespace {

constexpr const char* kOp = "pysalient::assemble_instances";
constexpr const char* kBackwardOp = "pysalient::_assemble_instances_backward";

using assemble_instances::band_begin;
using assemble_instances::clamp_offset;
using assemble_instances::score_channel;

// ------------------------------------------------------------------------------------------------ kernels
// output [R, m, m]; windows [R, 3] contiguous.
template <typename scalar_t>
__global__ void forward_kernel(const scalar_t* __restrict__ maps, const int64_t* __restrict__ windows, int64_t total,
                               int64_t m, int64_t k, int64_t channels, int64_t height, int64_t width,
                               scalar_t* __restrict__ output) {
  const int64_t plane = height * width;
  for (int64_t index = cuda::grid_start(); index < total; index += cuda::grid_stride()) {
    const int64_t j = index % m;
    const int64_t i = (index / m) % m;
    const int64_t r = index / (m * m);
    const int64_t b = windows[3 * r];
    const int64_t y = clamp_offset(windows[3 * r + 1], m, height) + i;
    const int64_t x = clamp_offset(windows[3 * r + 2], m, width) + j;
    output[index] = (y < 0 || y >= height || x < 0 || x >= width)
                        ? scalar_t(0)
                        : maps[(b * channels + score_channel(i, j, m, k)) * plane + y * width + x];
  }
}

// grad_maps [B, k*k, H, W]; the windows of image b are members[first[b] .. first[b + 1]).
template <typename scalar_t>
__global__ void backward_kernel(const scalar_t* __restrict__ grad_output, const int64_t* __restrict__ windows,
                                const int64_t* __restrict__ members, const int64_t* __restrict__ first, int64_t total,
                                int64_t m, int64_t k, int64_t height, int64_t width,
                                scalar_t* __restrict__ grad_maps) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int64_t plane = height * width;
  const int64_t channels = k * k;
  for (int64_t index = cuda::grid_start(); index < total; index += cuda::grid_stride()) {
    const int64_t x = index % width;
    const int64_t y = (index / width) % height;
    const int64_t c = (index / plane) % channels;
    const int64_t b = index / (plane * channels);
    // Window cells that read score map c: sub-window row c / k, sub-window column c % k.
    const int64_t i_begin = band_begin(c / k, m, k), i_end = band_begin(c / k + 1, m, k);
    const int64_t j_begin = band_begin(c % k, m, k), j_end = band_begin(c % k + 1, m, k);
    opmath_t sum = opmath_t(0);
    if (i_begin < i_end && j_begin < j_end) {
      for (int64_t n = first[b]; n < first[b + 1]; ++n) {
        const int64_t r = members[n];
        const int64_t i = y - clamp_offset(windows[3 * r + 1], m, height);
        const int64_t j = x - clamp_offset(windows[3 * r + 2], m, width);
        if (i >= i_begin && i < i_end && j >= j_begin && j < j_end) {
          sum += static_cast<opmath_t>(grad_output[(r * m + i) * m + j]);
        }
      }
    }
    grad_maps[index] = static_cast<scalar_t>(sum);
  }
}

// ------------------------------------------------------------------------------------------------ operators
at::Tensor assemble_instances_cuda(const at::Tensor& score_maps, const at::Tensor& windows, int64_t m, int64_t k) {
  assemble_instances::check_forward(score_maps, windows, m, k, kOp, &check_cuda);
  const c10::cuda::CUDAGuard guard(score_maps.device());
  at::Tensor output = at::empty({windows.size(0), m, m}, score_maps.options());
  if (output.numel() == 0) {
    return output;
  }
  const at::Tensor maps = score_maps.contiguous();
  const at::Tensor win = windows.contiguous();
  const int64_t total = output.numel();
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, maps.scalar_type(), "assemble_instances_cuda", [&] {
    forward_kernel<scalar_t><<<cuda::blocks_for(total), cuda::kThreads, 0, stream>>>(
        maps.data_ptr<scalar_t>(), win.data_ptr<int64_t>(), total, m, k, maps.size(1), maps.size(2), maps.size(3),
        output.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return output;
}

at::Tensor assemble_instances_backward_cuda(const at::Tensor& grad_output, const at::Tensor& windows, int64_t m,
                                            int64_t k, int64_t batch_size, int64_t height, int64_t width) {
  assemble_instances::check_backward(grad_output, windows, m, k, batch_size, height, width, kBackwardOp, &check_cuda);
  const c10::cuda::CUDAGuard guard(grad_output.device());
  if (grad_output.numel() == 0 || batch_size * k * k * height * width == 0) {
    return at::zeros({batch_size, k * k, height, width}, grad_output.options());
  }
  // Every element is written by the kernel, images without windows included.
  at::Tensor grad_maps = at::empty({batch_size, k * k, height, width}, grad_output.options());
  const at::Tensor grad = grad_output.contiguous();
  const at::Tensor win = windows.contiguous();
  // A stable sort keeps increasing window indices inside an image; first[b] = number of windows of images < b.
  const auto sorted = at::sort(win.select(1, 0), /*stable=*/true, /*dim=*/0, /*descending=*/false);
  const at::Tensor members = std::get<1>(sorted).contiguous();
  const at::Tensor first =
      at::searchsorted(std::get<0>(sorted).contiguous(), at::arange(batch_size + 1, win.options()));
  const int64_t total = grad_maps.numel();
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "assemble_instances_backward_cuda",
                                  [&] {
                                    backward_kernel<scalar_t><<<cuda::blocks_for(total), cuda::kThreads, 0, stream>>>(
                                        grad.data_ptr<scalar_t>(), win.data_ptr<int64_t>(),
                                        members.data_ptr<int64_t>(), first.data_ptr<int64_t>(), total, m, k, height,
                                        width, grad_maps.data_ptr<scalar_t>());
                                    C10_CUDA_KERNEL_LAUNCH_CHECK();
                                  });
  return grad_maps;
}

}  // namespace

TORCH_LIBRARY_IMPL(pysalient, CUDA, m) {
  m.impl("assemble_instances", &assemble_instances_cuda);
  m.impl("_assemble_instances_backward", &assemble_instances_backward_cuda);
}

}  // namespace pysalient
