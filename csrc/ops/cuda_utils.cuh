// Launch helpers shared by the CUDA kernels (csrc/ops/*/*_cuda.cu). Only c10/cuda headers are used: they ship
// with every torch wheel, so tools/cuda_check.py can compile the kernels against a CPU-only torch too.
#pragma once

#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <cstdint>

namespace pysalient {
namespace cuda {

constexpr int kThreads = 256;

// Blocks for n items at `threads` per block, capped: the kernels use grid-stride loops, so a capped grid still
// covers everything, and the cap keeps gridDim.x far below its limit.
inline unsigned int blocks_for(int64_t n, int threads = kThreads) {
  constexpr int64_t kMaxBlocks = int64_t{1} << 18;
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned int>(std::max<int64_t>(1, std::min<int64_t>(blocks, kMaxBlocks)));
}

// First index and stride of a 1-D grid-stride loop, in int64 so that tensors above 2^31 elements index safely.
__device__ inline int64_t grid_start() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ inline int64_t grid_stride() { return static_cast<int64_t>(blockDim.x) * gridDim.x; }

// Sum of `value` over a block of kBlock threads (a power of two) through `shared[kBlock]`, returned to every
// thread. The tree is fixed, so the result does not depend on scheduling (deterministic). The caller must
// __syncthreads() before writing `shared` again.
template <typename T, int kBlock>
__device__ inline T block_sum(T value, T* shared) {
  shared[threadIdx.x] = value;
  __syncthreads();
  for (int stride = kBlock / 2; stride > 0; stride >>= 1) {
    if (static_cast<int>(threadIdx.x) < stride) {
      shared[threadIdx.x] += shared[threadIdx.x + stride];
    }
    __syncthreads();
  }
  return shared[0];
}

}  // namespace cuda
}  // namespace pysalient
