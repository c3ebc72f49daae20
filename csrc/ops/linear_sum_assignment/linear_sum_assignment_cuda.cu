// Rectangular linear sum assignment for CUDA tensors. The shortest-augmenting-path solver is inherently
// sequential and the matrices are small (queries x targets of one image), so the CUDA kernel moves the cost to the
// host ONCE (one device-to-host copy, already in double and with the shorter side as rows), runs the CPU solver of
// linear_sum_assignment_kernel.h and moves the (rows, cols) indices back. Results,
// validation and error messages are those of the CPU kernel. A matcher that solves several images should still
// concatenate their costs and copy them to the host once per batch (see the SparseInst matcher).
#include <ATen/ATen.h>
#include <torch/library.h>

#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

#include "ops/checks.h"
#include "ops/cuda_utils.cuh"
#include "ops/linear_sum_assignment/linear_sum_assignment_checks.h"
#include "ops/linear_sum_assignment/linear_sum_assignment_kernel.h"
#include "ops/linear_sum_assignment/linear_sum_assignment_solve.h"

namespace pysalient {
namespace {

constexpr const char* kOp = "pysalient::linear_sum_assignment";

std::tuple<at::Tensor, at::Tensor> linear_sum_assignment_cuda(const at::Tensor& cost, bool maximize) {
  linear_sum_assignment::check_cost(cost, kOp, &check_cuda);
  const c10::cuda::CUDAGuard guard(cost.device());
  const int64_t num_rows = cost.size(0);
  const int64_t num_columns = cost.size(1);
  const auto index_options = cost.options().dtype(at::kLong);
  if (num_rows == 0 || num_columns == 0) {
    return {at::empty({0}, index_options), at::empty({0}, index_options)};
  }

  // The solver needs rows <= columns; a tall matrix is solved on its transpose (the optimum is the same). The
  // layout and the widening to double happen on the device, then the one copy (which synchronises the stream).
  const bool transpose = num_rows > num_columns;
  const int64_t rows = transpose ? num_columns : num_rows;
  const int64_t columns = transpose ? num_rows : num_columns;
  const at::Tensor oriented = transpose ? cost.t() : cost;
  const at::Tensor work = oriented.to(at::kDouble).contiguous().to(at::kCPU);
  double* values = work.data_ptr<double>();

  // sign * value and the validity test of the CPU kernel (NaN, or -inf after the sign flip, is rejected).
  const double sign = maximize ? -1.0 : 1.0;
  bool valid = true;
  for (int64_t i = 0; i < rows * columns; ++i) {
    const double value = sign * values[i];
    valid &= !(std::isnan(value) || value == -std::numeric_limits<double>::infinity());
    values[i] = value;
  }
  linear_sum_assignment::check_entries(valid, kOp);

  auto [row_indices, column_indices] =
      linear_sum_assignment::solve_prepared(values, rows, columns, num_rows, transpose, maximize, kOp);
  return {row_indices.to(cost.device()), column_indices.to(cost.device())};
}

}  // namespace

TORCH_LIBRARY_IMPL(pysalient, CUDA, m) { m.impl("linear_sum_assignment", &linear_sum_assignment_cuda); }

}  // namespace pysalient
