// Input validation shared by every kernel: each helper raises a c10::Error (RuntimeError in Python) whose
// message names the operator, the argument and what was expected.
#pragma once

#include <ATen/ATen.h>

namespace pysalient {

inline void check_dim(const at::Tensor& t, int64_t dim, const char* op, const char* name, const char* layout) {
  TORCH_CHECK(t.dim() == dim, op, ": ", name, " must be a ", dim, "-D tensor ", layout, ", got shape ", t.sizes());
}

inline void check_floating(const at::Tensor& t, const char* op, const char* name) {
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), op, ": ", name, " must be a floating-point tensor, got ",
              t.scalar_type());
}

inline void check_device(const at::Tensor& t, const at::Tensor& reference, const char* op, const char* name,
                         const char* reference_name) {
  TORCH_CHECK(t.device() == reference.device(), op, ": ", name, " is on ", t.device(), " but ", reference_name,
              " is on ", reference.device());
}

inline void check_cpu(const at::Tensor& t, const char* op, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), op, ": ", name, " must be a CPU tensor for the CPU kernel, got ", t.device());
}

// rois [R, 5] (batch_idx, x1, y1, x2, y2), floating point.
inline void check_rois(const at::Tensor& rois, const char* op) {
  TORCH_CHECK(rois.dim() == 2 && rois.size(1) == 5, op,
              ": rois must have shape [R, 5] (batch_idx, x1, y1, x2, y2), got ", rois.sizes());
  check_floating(rois, op, "rois");
}

// Validates the batch index column of rois: whole numbers in [0, batch_size) (host-side reductions).
inline void check_roi_batch_indices(const at::Tensor& rois, int64_t batch_size, const char* op) {
  if (rois.size(0) == 0) {
    return;
  }
  const at::Tensor idx = rois.select(1, 0);
  const double lo = idx.min().item<double>();
  const double hi = idx.max().item<double>();
  TORCH_CHECK(lo >= 0 && hi < static_cast<double>(batch_size), op, ": rois[:, 0] holds batch indices in [", lo,
              ", ", hi, "] but the batch has ", batch_size, " image(s)");
  TORCH_CHECK(idx.eq(idx.floor()).all().item<bool>(), op,
              ": rois[:, 0] must hold integral batch indices, got fractional ones (e.g. ",
              idx.masked_select(idx.ne(idx.floor())).flatten()[0].item<double>(), ")");
}

// Bilinear samples per bin and axis: <= 0 is adaptive; a fixed count is bounded so that one bin cannot take
// billions of samples (a sampling_ratio of 10^6 would run for hours).
constexpr int64_t kMaxSamplingRatio = 1024;
inline void check_sampling_ratio(int64_t sampling_ratio, const char* op) {
  TORCH_CHECK(sampling_ratio <= kMaxSamplingRatio, op, ": sampling_ratio must be <= ", kMaxSamplingRatio,
              " samples per bin and axis (or <= 0 for adaptive sampling), got ", sampling_ratio);
}

// An IoU threshold of NMS: a number in [0, 1] (NaN, negative or larger values would keep or drop every box).
inline void check_iou_threshold(double iou_threshold, const char* op) {
  TORCH_CHECK(iou_threshold >= 0.0 && iou_threshold <= 1.0, op, ": iou_threshold must be in [0, 1], got ",
              iou_threshold);
}

// A probability threshold of a strict test (p > threshold): in [0, 1) (NaN, 1 or more would drop every pixel).
inline void check_mask_threshold(double threshold, const char* op) {
  TORCH_CHECK(threshold >= 0.0 && threshold < 1.0, op, ": threshold must be in [0, 1), got ", threshold);
}

// The CUDA kernels' counterpart of check_cpu.
inline void check_cuda(const at::Tensor& t, const char* op, const char* name) {
  TORCH_CHECK(t.device().is_cuda(), op, ": ", name, " must be a CUDA tensor for the CUDA kernel, got ", t.device());
}

// check_cpu or check_cuda: lets one validation function serve the CPU and the CUDA kernel of an op.
using DeviceTypeCheck = void (*)(const at::Tensor&, const char*, const char*);

}  // namespace pysalient
