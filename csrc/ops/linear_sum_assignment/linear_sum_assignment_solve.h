// The host half shared by the CPU and CUDA kernels of linear_sum_assignment: solve a prepared work matrix and
// return the matching as two CPU index tensors. "Prepared" means what both kernels build before this step: the
// cost (transposed when it had more rows than columns, so that rows <= columns) in double, multiplied by -1 when
// maximizing, every entry already validated (check_entries).
#pragma once

#include <ATen/ATen.h>

#include <tuple>
#include <vector>

#include "ops/linear_sum_assignment/linear_sum_assignment_checks.h"
#include "ops/linear_sum_assignment/linear_sum_assignment_kernel.h"

namespace pysalient {
namespace linear_sum_assignment {

// values: [rows, columns] row-major (modified by the solver); num_rows: rows of the original cost.
// Returns (row_indices [rows], column_indices [rows]) int64 on the CPU, by ascending original row (scipy's order);
// two separate tensors, since an operator's outputs must not share storage.
inline std::tuple<at::Tensor, at::Tensor> solve_prepared(double* values, int64_t rows, int64_t columns,
                                                         int64_t num_rows, bool transpose, bool maximize,
                                                         const char* op) {
  std::vector<int64_t> column_of_row(rows);
  check_feasible(solve_rectangular_assignment(values, rows, columns, column_of_row.data()), rows, maximize, op);
  const auto index_options = at::TensorOptions().dtype(at::kLong);
  at::Tensor row_indices = at::empty({rows}, index_options);
  at::Tensor column_indices = at::empty({rows}, index_options);
  write_assignment_pairs(column_of_row.data(), rows, num_rows, transpose, row_indices.mutable_data_ptr<int64_t>(),
                         column_indices.mutable_data_ptr<int64_t>());
  return {row_indices, column_indices};
}

}  // namespace linear_sum_assignment
}  // namespace pysalient
