// Input validation of linear_sum_assignment shared by the CPU and CUDA kernels (same checks, same messages):
// the tensor checks before solving, and the two checks on the cost values the solver path reports.
#pragma once

#include <ATen/ATen.h>

#include "ops/checks.h"

namespace pysalient {
namespace linear_sum_assignment {

// cost [N, K] floating point on the kernel's device (`check_device_type` is check_cpu or check_cuda).
inline void check_cost(const at::Tensor& cost, const char* op, DeviceTypeCheck check_device_type) {
  check_dim(cost, 2, op, "cost", "[N, K]");
  check_floating(cost, op, "cost");
  check_device_type(cost, op, "cost");
}

// `valid`: no entry of sign * cost is NaN or -inf (scipy rejects those too).
inline void check_entries(bool valid, const char* op) {
  TORCH_CHECK(valid, op, ": cost matrix contains invalid numeric entries (NaN or -inf; NaN or +inf when ",
              "maximize=True)");
}

// `feasible`: the solver found an assignment of all `rows` = min(N, K) pairs without a forbidden entry.
inline void check_feasible(bool feasible, int64_t rows, bool maximize, const char* op) {
  TORCH_CHECK(feasible, op, ": cost matrix is infeasible (every assignment of min(N, K) = ", rows, " pairs uses a ",
              maximize ? "-inf" : "+inf", " entry)");
}

}  // namespace linear_sum_assignment
}  // namespace pysalient
