// SparseInst's dice matching cost on CUDA, the contract of dice_cost_cpu.cpp:
// D[i, j] = 2 <sigmoid(p_i), t_j> / (||sigmoid(p_i)||^2 + ||t_j||^2 + 1e-4), computed in fp32 (fp64 for fp64).
// One kernel per side writes the values in the compute dtype (sigmoid for the predictions) and reduces each row's
// squared norm (one block per row, fixed tree: deterministic); the N x K inner products come from at::mm (cuBLAS;
// it honours torch.backends.cuda.matmul.allow_tf32, off by default); a last kernel combines them with the shared
// dice_coefficient. Summation orders differ from the CPU's, so results agree to rounding (~1e-6 relative).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Dispatch_v2.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "ops/checks.h"
#include "ops/cuda_utils.cuh"
#include "ops/dice_cost/dice_cost_checks.h"
#include "ops/dice_cost/dice_cost_kernel.h"

namespace pysalient {
namespace {

constexpr const char* kOp = "pysalient::dice_cost";

// One block per row of [rows, length]: values[r] = f(input[r]) in compute_t and norms[r] = ||values[r]||^2, with
// f the sigmoid when `apply_sigmoid` (predictions) and the identity otherwise (targets: bool/uint8/float).
template <typename input_t, typename compute_t>
__global__ void prepare_kernel(const input_t* __restrict__ input, int64_t rows, int64_t length, bool apply_sigmoid,
                               compute_t* __restrict__ values, compute_t* __restrict__ norms) {
  __shared__ compute_t partial[cuda::kThreads];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const input_t* src = input + r * length;
    compute_t* dst = values + r * length;
    compute_t sum = compute_t(0);
    for (int64_t k = threadIdx.x; k < length; k += blockDim.x) {
      compute_t v = static_cast<compute_t>(src[k]);
      if (apply_sigmoid) {
        v = compute_t(1) / (compute_t(1) + std::exp(-v));
      }
      dst[k] = v;
      sum += v * v;
    }
    sum = cuda::block_sum<compute_t, cuda::kThreads>(sum, partial);
    if (threadIdx.x == 0) {
      norms[r] = sum;
    }
    __syncthreads();  // `partial` is rewritten by the next row
  }
}

template <typename compute_t>
__global__ void combine_kernel(const compute_t* __restrict__ dots, const compute_t* __restrict__ pred_norms,
                               const compute_t* __restrict__ target_norms, int64_t n, int64_t k,
                               compute_t* __restrict__ out) {
  for (int64_t index = cuda::grid_start(); index < n * k; index += cuda::grid_stride()) {
    out[index] = dice_coefficient<compute_t>(dots[index], pred_norms[index / k], target_norms[index % k]);
  }
}

// values [rows, length] and norms [rows] of one side in compute_t.
template <typename compute_t>
std::pair<at::Tensor, at::Tensor> prepare(const at::Tensor& input, bool apply_sigmoid, const at::TensorOptions& options,
                                          cudaStream_t stream) {
  // The kernel reads fp32/fp64/fp16/bf16/bool/uint8 directly. Any other floating dtype (float8; the contract takes
  // "any floating dtype") is widened to compute_t first, as the CPU kernel does, instead of failing the dispatch.
  const at::ScalarType type = input.scalar_type();
  const bool readable = type == at::kFloat || type == at::kDouble || type == at::kHalf || type == at::kBFloat16 ||
                        type == at::kBool || type == at::kByte;
  const at::Tensor src = (readable ? input : input.to(c10::CppTypeToScalarType<compute_t>::value)).contiguous();
  const int64_t rows = src.size(0), length = src.size(1);
  at::Tensor values = at::empty({rows, length}, options);
  at::Tensor norms = at::empty({rows}, options);
  const auto blocks = static_cast<unsigned int>(std::max<int64_t>(1, std::min<int64_t>(rows, int64_t{1} << 16)));
  AT_DISPATCH_V2(
      src.scalar_type(), "dice_cost_prepare_cuda", AT_WRAP([&] {
        prepare_kernel<scalar_t, compute_t><<<blocks, cuda::kThreads, 0, stream>>>(
            src.data_ptr<scalar_t>(), rows, length, apply_sigmoid, values.data_ptr<compute_t>(),
            norms.data_ptr<compute_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }),
      AT_EXPAND(AT_FLOATING_TYPES), at::kHalf, at::kBFloat16, at::kBool, at::kByte);
  return {values, norms};
}

at::Tensor dice_cost_cuda(const at::Tensor& pred_logits, const at::Tensor& targets) {
  dice_cost::check_inputs(pred_logits, targets, kOp, &check_cuda);

  const c10::cuda::CUDAGuard guard(pred_logits.device());
  const auto compute_type = pred_logits.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const auto options = pred_logits.options().dtype(compute_type);
  const int64_t n = pred_logits.size(0);
  const int64_t k = targets.size(0);
  at::Tensor out = at::empty({n, k}, options);
  if (n == 0 || k == 0) {
    return out;
  }
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(compute_type, "dice_cost_cuda", [&] {
    // fp16/bf16 logits are widened before the sigmoid, as on the CPU.
    const auto pred = prepare<scalar_t>(pred_logits, /*apply_sigmoid=*/true, options, stream);
    const auto target = prepare<scalar_t>(targets, /*apply_sigmoid=*/false, options, stream);
    const at::Tensor dots = at::mm(pred.first, target.first.t()).contiguous();
    combine_kernel<scalar_t><<<cuda::blocks_for(n * k), cuda::kThreads, 0, stream>>>(
        dots.data_ptr<scalar_t>(), pred.second.data_ptr<scalar_t>(), target.second.data_ptr<scalar_t>(), n, k,
        out.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(pysalient, CUDA, m) { m.impl("dice_cost", &dice_cost_cuda); }

}  // namespace pysalient
