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

// Validates the batch index column of rois against the batch size (host-side, CPU tensors only).
inline void check_roi_batch_indices(const at::Tensor& rois, int64_t batch_size, const char* op) {
  if (rois.size(0) == 0) {
    return;
  }
  const at::Tensor idx = rois.select(1, 0);
  const double lo = idx.min().item<double>();
  const double hi = idx.max().item<double>();
  TORCH_CHECK(lo >= 0 && hi < static_cast<double>(batch_size), op, ": rois[:, 0] holds batch indices in [", lo,
              ", ", hi, "] but the batch has ", batch_size, " image(s)");
}

// The CUDA kernels' counterpart of check_cpu.
inline void check_cuda(const at::Tensor& t, const char* op, const char* name) {
  TORCH_CHECK(t.device().is_cuda(), op, ": ", name, " must be a CUDA tensor for the CUDA kernel, got ", t.device());
}

// check_cpu or check_cuda: lets one validation function serve the CPU and the CUDA kernel of an op.
using DeviceTypeCheck = void (*)(const at::Tensor&, const char*, const char*);

}  // namespace pysalient
