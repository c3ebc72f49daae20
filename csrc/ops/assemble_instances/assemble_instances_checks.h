// Input validation of assemble_instances shared by the CPU and CUDA kernels (same checks, same messages).
#pragma once

#include <ATen/ATen.h>

#include "ops/checks.h"

namespace pysalient {
namespace assemble_instances {

inline void check_sizes(const char* op, int64_t m, int64_t k) {
  TORCH_CHECK(m >= 1, op, ": the window size m must be >= 1, got ", m);
  TORCH_CHECK(k >= 1, op, ": the number of sub-windows per side k must be >= 1, got ", k);
}

// windows [R, 3] int64 (batch_idx, y0, x0) on the device of `reference`, batch indices in [0, batch_size).
// `check_device_type` is check_cpu or check_cuda: the kernel's own device.
inline void check_windows(const at::Tensor& windows, const at::Tensor& reference, const char* reference_name,
                          int64_t batch_size, const char* op, DeviceTypeCheck check_device_type) {
  TORCH_CHECK(windows.dim() == 2 && windows.size(1) == 3, op,
              ": windows must have shape [R, 3] (batch_idx, y0, x0), got ", windows.sizes());
  TORCH_CHECK(windows.scalar_type() == at::kLong, op, ": windows must be an int64 tensor, got ",
              windows.scalar_type());
  check_device_type(reference, op, reference_name);
  check_device(windows, reference, op, "windows", reference_name);
  if (windows.size(0) > 0) {
    const at::Tensor index = windows.select(1, 0);
    const int64_t lo = index.min().item<int64_t>();
    const int64_t hi = index.max().item<int64_t>();
    TORCH_CHECK(lo >= 0 && hi < batch_size, op, ": windows[:, 0] holds batch indices in [", lo, ", ", hi,
                "] but the batch has ", batch_size, " image(s)");
  }
}

// assemble_instances(score_maps [B, k*k, H, W], windows [R, 3], m, k).
inline void check_forward(const at::Tensor& score_maps, const at::Tensor& windows, int64_t m, int64_t k,
                          const char* op, DeviceTypeCheck check_device_type) {
  check_dim(score_maps, 4, op, "score_maps", "[B, k*k, H, W]");
  check_floating(score_maps, op, "score_maps");
  check_sizes(op, m, k);
  TORCH_CHECK(score_maps.size(1) == k * k, op, ": score_maps must have k*k = ", k * k, " channels for k = ", k,
              ", got ", score_maps.size(1));
  check_windows(windows, score_maps, "score_maps", score_maps.size(0), op, check_device_type);
}

// _assemble_instances_backward(grad_output [R, m, m], windows [R, 3], m, k, batch_size, height, width).
inline void check_backward(const at::Tensor& grad_output, const at::Tensor& windows, int64_t m, int64_t k,
                           int64_t batch_size, int64_t height, int64_t width, const char* op,
                           DeviceTypeCheck check_device_type) {
  check_dim(grad_output, 3, op, "grad_output", "[R, m, m]");
  check_floating(grad_output, op, "grad_output");
  check_sizes(op, m, k);
  TORCH_CHECK(batch_size >= 0 && height >= 0 && width >= 0, op, ": batch_size, height and width must be >= 0, got ",
              batch_size, ", ", height, ", ", width);
  TORCH_CHECK(grad_output.size(1) == m && grad_output.size(2) == m, op, ": grad_output must have shape [R, ", m, ", ",
              m, "] for m = ", m, ", got ", grad_output.sizes());
  check_windows(windows, grad_output, "grad_output", batch_size, op, check_device_type);
  TORCH_CHECK(windows.size(0) == grad_output.size(0), op, ": grad_output has ", grad_output.size(0),
              " windows but windows has ", windows.size(0));
}

}  // namespace assemble_instances
}  // namespace pysalient
