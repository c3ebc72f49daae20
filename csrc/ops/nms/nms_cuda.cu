// Greedy NMS on CUDA with the semantics of nms_cpu.cpp: stable descending score sort, keep in score order, the IoU
// and suppression test of nms_kernel.h (torchvision's, or maskrcnn-benchmark's +1 / IoU >= threshold with `legacy`).
//
// Two kernels, the usual GPU formulation of greedy NMS:
//  1. mask: for the score-sorted boxes, bit j of row i says whether box i would suppress box j (j > i); blocks of
//     64 x 64 pairs, one uint64 word per (row, block of 64 columns). Only the upper triangle is computed (the scan
//     never reads the rest). Memory is N * ceil(N / 64) * 8 bytes (12.5 MB for 10k boxes).
//  2. scan: one block walks the words in order; thread 0 resolves the 64 boxes of a word against the removal bits
//     accumulated so far (and against each other through the diagonal word), then all threads OR the rows of the
//     boxes just kept into the removal bits of the later words. A box is kept iff no earlier kept box suppresses
//     it, exactly the CPU loop's decision, so the result is identical and deterministic.
// The IoU is the CPU kernel's expression (nms_kernel.h), including std::min/std::max's handling of NaN operands.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include "ops/checks.h"
#include "ops/cuda_utils.cuh"
#include "ops/nms/nms_checks.h"
#include "ops/nms/nms_kernel.h"

namespace pysalient {
namespace {

constexpr const char* kOp = "pysalient::nms";
constexpr int kWordBits = 64;
constexpr int kScanThreads = 256;

// boxes: score-sorted [N, 4]; mask: [N, words] with words = ceil(N / 64); grid (words, words), 64 threads.
template <typename T>
__global__ void mask_kernel(const T* __restrict__ boxes, int64_t n, T threshold, bool legacy, int64_t words,
                            uint64_t* __restrict__ mask) {
  const int64_t column_block = blockIdx.x;
  const int64_t row_block = blockIdx.y;
  if (column_block < row_block) {
    return;
  }
  const int64_t row_start = row_block * kWordBits;
  const int64_t column_start = column_block * kWordBits;
  const int row_size = static_cast<int>(min(n - row_start, static_cast<int64_t>(kWordBits)));
  const int column_size = static_cast<int>(min(n - column_start, static_cast<int64_t>(kWordBits)));

  __shared__ T columns[kWordBits * 4];
  __shared__ T column_areas[kWordBits];
  const int t = threadIdx.x;
  if (t < column_size) {
    const T* box = boxes + (column_start + t) * 4;
    for (int k = 0; k < 4; ++k) {
      columns[t * 4 + k] = box[k];
    }
    column_areas[t] = nms::box_area(box[0], box[1], box[2], box[3], legacy);
  }
  __syncthreads();
  if (t >= row_size) {
    return;
  }
  const int64_t i = row_start + t;
  const T* row_box = boxes + i * 4;
  const T row_area = nms::box_area(row_box[0], row_box[1], row_box[2], row_box[3], legacy);
  uint64_t bits = 0;
  for (int j = row_block == column_block ? t + 1 : 0; j < column_size; ++j) {
    const T* column = columns + j * 4;
    if (nms::suppresses(row_box[0], row_box[1], row_box[2], row_box[3], row_area, column[0], column[1], column[2],
                        column[3], column_areas[j], threshold, legacy)) {
      bits |= uint64_t{1} << j;
    }
  }
  mask[i * words + column_block] = bits;
}

// One block. removed: [words] zero-initialised scratch; keep: [N] zero-initialised, set for every kept box.
__global__ void scan_kernel(const uint64_t* __restrict__ mask, int64_t n, int64_t words, uint64_t* __restrict__ removed,
                            bool* __restrict__ keep) {
  __shared__ uint64_t diagonal[kWordBits];
  __shared__ int64_t kept[kWordBits];
  __shared__ int kept_count;
  for (int64_t block = 0; block < words; ++block) {
    const int64_t start = block * kWordBits;
    const int size = static_cast<int>(min(n - start, static_cast<int64_t>(kWordBits)));
    if (static_cast<int>(threadIdx.x) < size) {
      diagonal[threadIdx.x] = mask[(start + threadIdx.x) * words + block];
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      uint64_t word = removed[block];
      int count = 0;
      for (int t = 0; t < size; ++t) {
        if (!((word >> t) & 1)) {
          keep[start + t] = true;
          kept[count++] = start + t;
          word |= diagonal[t];
        }
      }
      kept_count = count;
    }
    __syncthreads();
    // Each later word belongs to one thread during this step, so the ORs do not race.
    for (int k = 0; k < kept_count; ++k) {
      const uint64_t* row = mask + kept[k] * words;
      for (int64_t w = block + 1 + threadIdx.x; w < words; w += blockDim.x) {
        removed[w] |= row[w];
      }
    }
    __syncthreads();
  }
}

template <typename scalar_t>
at::Tensor nms_kernel(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold, bool legacy) {
  const int64_t n = boxes.size(0);
  const int64_t words = (n + kWordBits - 1) / kWordBits;
  const at::Tensor order = std::get<1>(scores.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  const at::Tensor sorted = boxes.index_select(0, order).contiguous();
  at::Tensor mask = at::empty({n * words}, boxes.options().dtype(at::kLong));
  at::Tensor removed = at::zeros({words}, boxes.options().dtype(at::kLong));
  at::Tensor keep = at::zeros({n}, boxes.options().dtype(at::kBool));
  auto* mask_ptr = reinterpret_cast<uint64_t*>(mask.data_ptr<int64_t>());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  mask_kernel<scalar_t><<<dim3(static_cast<unsigned int>(words), static_cast<unsigned int>(words)), kWordBits, 0,
                          stream>>>(sorted.data_ptr<scalar_t>(), n, static_cast<scalar_t>(iou_threshold), legacy,
                                    words, mask_ptr);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  scan_kernel<<<1, kScanThreads, 0, stream>>>(mask_ptr, n, words,
                                              reinterpret_cast<uint64_t*>(removed.data_ptr<int64_t>()),
                                              keep.data_ptr<bool>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return order.masked_select(keep);
}

at::Tensor nms_cuda(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold, bool legacy) {
  nms::check_inputs(boxes, scores, kOp, &check_cuda);
  pysalient::check_iou_threshold(iou_threshold, kOp);
  if (boxes.size(0) == 0) {
    return at::empty({0}, boxes.options().dtype(at::kLong));
  }
  // gridDim.y (the row blocks) is limited to 65535; the N x N/64 mask would not fit in memory long before.
  TORCH_CHECK(boxes.size(0) <= int64_t{65535} * kWordBits, kOp, ": at most ", int64_t{65535} * kWordBits,
              " boxes are supported on CUDA, got ", boxes.size(0));
  const c10::cuda::CUDAGuard guard(boxes.device());
  // Half-precision inputs are compared in float32; fp32/fp64 keep their own precision (as the CPU kernel).
  const bool reduced = boxes.scalar_type() == at::kHalf || boxes.scalar_type() == at::kBFloat16;
  const at::Tensor b = reduced ? boxes.to(at::kFloat) : boxes;
  const at::Tensor s = scores.to(b.scalar_type());
  at::Tensor keep;
  AT_DISPATCH_FLOATING_TYPES(b.scalar_type(), "nms_cuda",
                             [&] { keep = nms_kernel<scalar_t>(b, s, iou_threshold, legacy); });
  return keep;
}

}  // namespace

TORCH_LIBRARY_IMPL(pysalient, CUDA, m) { m.impl("nms", &nms_cuda); }

}  // namespace pysalient
