// Rectangular linear sum assignment (same optimum as scipy.optimize.linear_sum_assignment). One pass over the
// cost matrix validates it, converts it to double, applies the sign of `maximize` and lays it out with the
// shorter side as rows (parallel over rows); the shortest-augmenting-path solver itself is sequential.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

#include "ops/checks.h"
#include "ops/linear_sum_assignment/linear_sum_assignment_checks.h"
#include "ops/linear_sum_assignment/linear_sum_assignment_kernel.h"
#include "ops/linear_sum_assignment/linear_sum_assignment_solve.h"

namespace pysalient {
namespace {

constexpr const char* kOp = "pysalient::linear_sum_assignment";

// Fills work[rows, columns] (row-major) with sign * cost (transposed when `transpose`) straight from the strided
// input, so non-contiguous and transposed views need no extra copy. Returns false on NaN or a value that is
// -inf after the sign flip (scipy rejects those too: a -inf pair would make the optimum unbounded).
template <typename scalar_t>
bool prepare_work_matrix(const at::Tensor& cost, bool transpose, bool maximize, std::vector<double>& work) {
  const int64_t rows = transpose ? cost.size(1) : cost.size(0);
  const int64_t columns = transpose ? cost.size(0) : cost.size(1);
  const int64_t row_stride = transpose ? cost.stride(1) : cost.stride(0);
  const int64_t column_stride = transpose ? cost.stride(0) : cost.stride(1);
  const scalar_t* data = cost.const_data_ptr<scalar_t>();
  const double sign = maximize ? -1.0 : 1.0;
  std::atomic<bool> valid{true};
  const int64_t grain = std::max<int64_t>(1, 16384 / columns);
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    bool chunk_valid = true;
    for (int64_t i = begin; i < end; ++i) {
      const scalar_t* source = data + i * row_stride;
      double* target = work.data() + i * columns;
      for (int64_t j = 0; j < columns; ++j) {
        const double value = sign * static_cast<double>(source[j * column_stride]);
        chunk_valid &= !(std::isnan(value) || value == -std::numeric_limits<double>::infinity());
        target[j] = value;
      }
    }
    if (!chunk_valid) {
      valid.store(false, std::memory_order_relaxed);
    }
  });
  return valid.load();
}

std::tuple<at::Tensor, at::Tensor> linear_sum_assignment_cpu(const at::Tensor& cost, bool maximize) {
  linear_sum_assignment::check_cost(cost, kOp, &check_cpu);
  const int64_t num_rows = cost.size(0);
  const int64_t num_columns = cost.size(1);
  const auto index_options = cost.options().dtype(at::kLong);
  if (num_rows == 0 || num_columns == 0) {
    return {at::empty({0}, index_options), at::empty({0}, index_options)};
  }

  // The solver needs rows <= columns; a tall matrix is solved on its transpose (the optimum is the same).
  const bool transpose = num_rows > num_columns;
  const int64_t rows = transpose ? num_columns : num_rows;
  const int64_t columns = transpose ? num_rows : num_columns;
  std::vector<double> work(static_cast<size_t>(rows * columns));
  bool valid = true;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, cost.scalar_type(), "linear_sum_assignment_cpu", [&] {
    valid = prepare_work_matrix<scalar_t>(cost, transpose, maximize, work);
  });
  linear_sum_assignment::check_entries(valid, kOp);

  return linear_sum_assignment::solve_prepared(work.data(), rows, columns, num_rows, transpose, maximize, kOp);
}

}  // namespace

TORCH_LIBRARY_IMPL(pysalient, CPU, m) { m.impl("linear_sum_assignment", &linear_sum_assignment_cpu); }

}  // namespace pysalient
