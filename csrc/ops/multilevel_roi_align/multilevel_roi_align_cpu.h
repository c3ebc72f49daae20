// Machinery shared by the CPU forward (multilevel_roi_align_cpu.cpp) and backward
// (multilevel_roi_align_backward_cpu.cpp) of multi-level RoIAlign.
//
// Layout: the kernels work channels-last ([B, H, W, C] maps), so a bilinear sample is four contiguous channel
// vectors and the innermost loop runs over channels (vectorised by the compiler). The sample neighbours and
// weights of one RoI are tabulated once per (RoI, bin, sample) and reused for every channel of a task.
// Scheduling: the work is cut into (level, item, channel block) tasks of similar cost, largest first, which the
// threads of one at::parallel_for pull from a shared counter. Half precision is computed in float.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <vector>

#include "ops/multilevel_roi_align/multilevel_roi_align_kernel.h"

namespace pysalient {
namespace multilevel_roi_align {

using roi_align::AxisNeighbours;
using roi_align::RoiAxis;

struct LevelShape {
  int64_t channels, height, width, pooled_h, pooled_w;
};

// Geometry of one RoI on one level (index level * R + roi).
template <typename T>
struct RoiLevel {
  RoiAxis<T> y, x;
  int64_t batch;
  int64_t count;
};

// A block of channels of one (level, RoI) in the forward or of one (level, image) in the backward.
struct Task {
  int64_t level, item, channel_begin, channel_end, cost;
};

// Per-thread scratch: the axis tables of the current RoI and one output row, channels-last.
template <typename T>
struct Workspace {
  std::vector<AxisNeighbours<T>> ys, xs;
  std::vector<T> buffer;
};

// ------------------------------------------------------------------------------------------------ scheduling
// rois: contiguous [R, 5] in T. Returns the geometry of every (level, RoI), level-major.
template <typename T>
std::vector<RoiLevel<T>> roi_levels(const at::Tensor& rois, at::ArrayRef<double> spatial_scales,
                                    const std::vector<LevelShape>& shapes, int64_t sampling_ratio, bool aligned) {
  const int64_t num_rois = rois.size(0);
  const T* data = rois.data_ptr<T>();
  std::vector<RoiLevel<T>> geometry(shapes.size() * num_rois);
  for (size_t l = 0; l < shapes.size(); ++l) {
    const T scale = static_cast<T>(spatial_scales[l]);
    for (int64_t r = 0; r < num_rois; ++r) {
      const T* roi = data + 5 * r;
      RoiLevel<T>& g = geometry[l * num_rois + r];
      g.x = roi_align::roi_axis<T>(roi[1], roi[3], scale, shapes[l].pooled_w, sampling_ratio, aligned);
      g.y = roi_align::roi_axis<T>(roi[2], roi[4], scale, shapes[l].pooled_h, sampling_ratio, aligned);
      g.batch = static_cast<int64_t>(roi[0]);
      g.count = roi_align::sample_count(g.y.grid, g.x.grid);
    }
  }
  return geometry;
}

// Cuts (level, item) units of cost `cost_per_channel * channels` into channel blocks: at most kMaxBlock channels
// (so the part of a large RoI's map that a task reads stays in L2: 32x32 cells x 64 floats = 256 KiB), roughly
// 8 tasks per thread overall, and no blocks thinner than kMinBlock channels (short vector loops lose their speed
// and every task recomputes its sample weights).
constexpr int64_t kMaxBlock = 64;
constexpr int64_t kMinBlock = 32;

inline std::vector<Task> make_tasks(const std::vector<Task>& units, int64_t& total_cost) {
  total_cost = 0;
  for (const Task& u : units) {
    total_cost += u.cost * (u.channel_end - u.channel_begin);
  }
  const int64_t target = std::max<int64_t>(total_cost / (8 * at::get_num_threads()), 1 << 14);
  std::vector<Task> tasks;
  for (const Task& u : units) {
    const int64_t channels = u.channel_end - u.channel_begin;
    const int64_t wanted = (u.cost * channels + target - 1) / target;
    const int64_t most = (channels + kMinBlock - 1) / kMinBlock, least = (channels + kMaxBlock - 1) / kMaxBlock;
    const int64_t chunks = std::max({std::min(wanted, most), least, int64_t{1}});
    const int64_t block = (channels + chunks - 1) / chunks;
    for (int64_t c = 0; c < channels; c += block) {
      const int64_t end = std::min(c + block, channels);
      tasks.push_back(Task{u.level, u.item, c, end, u.cost * (end - c)});
    }
  }
  std::stable_sort(tasks.begin(), tasks.end(), [](const Task& a, const Task& b) { return a.cost > b.cost; });
  return tasks;
}

// One at::parallel_for for all levels: each worker pulls the next task (largest first) until none is left.
template <typename T, typename Run>
void run_tasks(const std::vector<Task>& tasks, int64_t total_cost, const Run& run) {
  const int64_t n = static_cast<int64_t>(tasks.size());
  const int64_t workers = total_cost < (1 << 16) ? 1 : std::min<int64_t>(n, at::get_num_threads());
  std::atomic<int64_t> next{0};
  at::parallel_for(0, workers, 1, [&](int64_t, int64_t) {
    Workspace<T> workspace;
    for (int64_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) {
      run(tasks[i], workspace);
    }
  });
}

// ------------------------------------------------------------------------------------------------ sampling
// Tabulates the neighbours of every sample of RoI `g` along each axis: ys [out_h * grid_h], xs [out_w * grid_w].
template <typename T>
void axis_tables(const RoiLevel<T>& g, const LevelShape& s, Workspace<T>& ws) {
  ws.ys.resize(s.pooled_h * g.y.grid);
  ws.xs.resize(s.pooled_w * g.x.grid);
  for (int64_t p = 0; p < s.pooled_h; ++p) {
    for (int64_t i = 0; i < g.y.grid; ++i) {
      ws.ys[p * g.y.grid + i] = roi_align::axis_neighbours(roi_align::sample_coordinate(g.y, p, i), s.height);
    }
  }
  for (int64_t q = 0; q < s.pooled_w; ++q) {
    for (int64_t i = 0; i < g.x.grid; ++i) {
      ws.xs[q * g.x.grid + i] = roi_align::axis_neighbours(roi_align::sample_coordinate(g.x, q, i), s.width);
    }
  }
}

// Calls visit(w1, w2, w3, w4, o1, o2, o3, o4) for every valid sample of bin (p, q): the bilinear weights of the
// (low, low), (low, high), (high, low), (high, high) neighbours (y first) and their cell offsets in a
// channels-last map, in torchvision's summation order. Invalid samples are skipped; they still count.
template <typename T, typename Visit>
inline void for_each_sample(const RoiLevel<T>& g, const Workspace<T>& ws, int64_t p, int64_t q, int64_t width,
                            int64_t channels, const Visit& visit) {
  for (int64_t i = 0; i < g.y.grid; ++i) {
    const AxisNeighbours<T>& sy = ws.ys[p * g.y.grid + i];
    if (!sy.valid) {
      continue;
    }
    for (int64_t j = 0; j < g.x.grid; ++j) {
      const AxisNeighbours<T>& sx = ws.xs[q * g.x.grid + j];
      if (sx.valid) {
        visit(sy.low_weight * sx.low_weight, sy.low_weight * sx.high_weight, sy.high_weight * sx.low_weight,
              sy.high_weight * sx.high_weight, (sy.low * width + sx.low) * channels,
              (sy.low * width + sx.high) * channels, (sy.high * width + sx.low) * channels,
              (sy.high * width + sx.high) * channels);
      }
    }
  }
}

// The dtype the kernels compute in: float for fp16/bf16, else the input's own.
inline at::ScalarType compute_type(at::ScalarType type) {
  return type == at::kHalf || type == at::kBFloat16 ? at::kFloat : type;
}

}  // namespace multilevel_roi_align
}  // namespace pysalient
