// Exact rectangular linear assignment by shortest augmenting paths with dual potentials (the Jonker-Volgenant
// scheme in the form given by D. F. Crouse, "On implementing 2D rectangular assignment algorithms", IEEE TAES
// 52(4), 2016, Algorithm 1). Plain host C++ with no ATen dependency so that any kernel (the CPU kernel, a GPU
// kernel that solves on the host) can call it.
#pragma once

#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

namespace pysalient {

// Minimises sum_i cost[i, column_of_row[i]] over injective maps of the `rows` rows into the `columns` columns.
//
// cost is row-major [rows, columns] with rows <= columns; every entry is finite or +inf (a forbidden pair),
// never NaN or -inf. Returns false when every complete assignment uses a forbidden pair.
//
// Rows are inserted one at a time. For each new (free) row, Dijkstra's algorithm on the reduced costs
// c[i, j] - u[i] - v[j] (non-negative by the invariant of the potentials u, v) finds the shortest alternating
// path to a free column; the potentials are then shifted so that the path becomes tight and the matching is
// flipped along it. After `rows` insertions the matching is optimal (complementary slackness), whatever the
// ties. Cost: O(rows^2 * columns).
inline bool solve_rectangular_assignment(const double* cost, int64_t rows, int64_t columns, int64_t* column_of_row) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  std::vector<double> row_potential(rows, 0.0);
  std::vector<double> column_potential(columns, 0.0);
  std::vector<int64_t> row_of_column(columns, -1);
  for (int64_t i = 0; i < rows; ++i) {
    column_of_row[i] = -1;
  }
  // Per search: tentative path length to each column, the row it was reached from, the columns not yet
  // settled (kept compact by swap-removal) and the settled rows and columns whose potentials change.
  std::vector<double> distance(columns);
  std::vector<int64_t> reached_from(columns);
  std::vector<int64_t> unsettled(columns);
  std::vector<int64_t> settled_rows;
  std::vector<int64_t> settled_columns;
  settled_rows.reserve(rows);
  settled_columns.reserve(columns);

  for (int64_t free_row = 0; free_row < rows; ++free_row) {
    for (int64_t j = 0; j < columns; ++j) {
      distance[j] = kInf;
      unsettled[j] = j;
    }
    int64_t num_unsettled = columns;
    settled_rows.clear();
    settled_columns.clear();
    double path_length = 0.0;  // distance of the row being expanded (0 for the free row itself)
    int64_t row = free_row;
    int64_t sink = -1;
    while (sink < 0) {
      settled_rows.push_back(row);
      const double* cost_row = cost + row * columns;
      const double offset = path_length - row_potential[row];
      double nearest = kInf;
      int64_t nearest_slot = -1;
      for (int64_t slot = 0; slot < num_unsettled; ++slot) {
        const int64_t j = unsettled[slot];
        // +inf costs stay +inf here, so a forbidden pair never relaxes a distance.
        const double through_row = offset + cost_row[j] - column_potential[j];
        if (through_row < distance[j]) {
          distance[j] = through_row;
          reached_from[j] = row;
        }
        // Among equally near columns a free one ends the search at once (fewer settled nodes, same optimum).
        if (distance[j] < nearest || (distance[j] == nearest && row_of_column[j] < 0)) {
          nearest = distance[j];
          nearest_slot = slot;
        }
      }
      if (nearest == kInf) {
        return false;  // no finite alternating path reaches a free column: no feasible complete assignment
      }
      const int64_t column = unsettled[nearest_slot];
      unsettled[nearest_slot] = unsettled[--num_unsettled];
      settled_columns.push_back(column);
      path_length = nearest;
      if (row_of_column[column] < 0) {
        sink = column;
      } else {
        row = row_of_column[column];
      }
    }

    // Shift the potentials of everything settled so that the shortest path is tight and every reduced cost
    // stays non-negative; the distance of a matched row is that of the column it was reached through.
    row_potential[free_row] += path_length;
    for (size_t s = 1; s < settled_rows.size(); ++s) {
      const int64_t i = settled_rows[s];
      row_potential[i] += path_length - distance[column_of_row[i]];
    }
    for (const int64_t j : settled_columns) {
      column_potential[j] -= path_length - distance[j];
    }

    // Flip the matching along the path, walking back from the free column to the free row.
    int64_t column = sink;
    while (true) {
      const int64_t i = reached_from[column];
      row_of_column[column] = i;
      std::swap(column_of_row[i], column);
      if (i == free_row) {
        break;
      }
    }
  }
  return true;
}

// Writes the solved matching as (original row, original column) pairs by ascending original row (scipy's order).
// column_of_row: [rows] of the solved (possibly transposed, so that rows <= columns) problem; num_rows: rows of
// the original cost matrix; out_rows / out_columns: [rows] each. When the problem was transposed, solved row r is
// original column r, matched to original row column_of_row[r]: a bucket pass over the original rows orders them
// without a sort.
inline void write_assignment_pairs(const int64_t* column_of_row, int64_t rows, int64_t num_rows, bool transpose,
                                   int64_t* out_rows, int64_t* out_columns) {
  if (!transpose) {
    for (int64_t i = 0; i < rows; ++i) {
      out_rows[i] = i;
      out_columns[i] = column_of_row[i];
    }
    return;
  }
  std::vector<int64_t> column_of_original_row(num_rows, -1);
  for (int64_t r = 0; r < rows; ++r) {
    column_of_original_row[column_of_row[r]] = r;
  }
  int64_t next = 0;
  for (int64_t original_row = 0; original_row < num_rows; ++original_row) {
    if (column_of_original_row[original_row] >= 0) {
      out_rows[next] = original_row;
      out_columns[next] = column_of_original_row[original_row];
      ++next;
    }
  }
}

}  // namespace pysalient
