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

}  // namespace assemble_instances
}  // namespace pysalient
