// Multi-level RoIAlign on the CPU: output l is torchvision's roi_align(features[l], rois, (out_h_l, out_w_l),
// spatial_scales[l], sampling_ratio, aligned), every level computed in one parallel launch.
//
// Layout: each level is read channels-last ([B, H, W, C], one copy per call), so a bilinear sample is four
// contiguous channel vectors and the innermost loop runs over channels (vectorised by the compiler). The sample
// neighbours and weights are computed once per (RoI, bin, sample) and reused for every channel of a task.
// Scheduling: the work is cut into (level, RoI, channel block) tasks of similar cost, largest first, which the
// threads of one at::parallel_for pull from a shared counter; every output element is written by one task, so
// the result does not depend on the schedule. The backward cuts (level, image, channel block) tasks instead:
// each owns a slice of one image's gradient and adds the RoIs of that image in increasing index order, which is
// deterministic and race-free without atomics. Half precision is computed in float.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <vector>

#include "ops/checks.h"
#include "ops/multilevel_roi_align/multilevel_roi_align_kernel.h"

namespace pysalient {
namespace {

constexpr const char* kOp = "pysalient::multilevel_roi_align";
constexpr const char* kBackwardOp = "pysalient::_multilevel_roi_align_backward";

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

template <typename T>
struct Workspace {
  std::vector<AxisNeighbours<T>> ys, xs;
  std::vector<T> buffer;
};

// ------------------------------------------------------------------------------------------------ validation
std::string level_name(const char* name, size_t level) {
  return std::string(name) + "[" + std::to_string(level) + "]";
}

void check_levels(at::TensorList tensors, const char* op, const char* name, const char* layout) {
  TORCH_CHECK(!tensors.empty(), op, ": ", name, " must be a non-empty list of 4-D tensors (one per level)");
  const at::Tensor& first = tensors[0];
  for (size_t l = 0; l < tensors.size(); ++l) {
    const std::string label = level_name(name, l);
    const at::Tensor& t = tensors[l];
    check_dim(t, 4, op, label.c_str(), layout);
    check_floating(t, op, label.c_str());
    TORCH_CHECK(t.scalar_type() == first.scalar_type(), op, ": every level must have one dtype, but ", label,
                " is ", t.scalar_type(), " and ", name, "[0] is ", first.scalar_type());
    check_device(t, first, op, label.c_str(), level_name(name, 0).c_str());
  }
  check_cpu(first, op, level_name(name, 0).c_str());
}

// (out_h, out_w) per level from L square sizes or 2L (height, width) entries.
std::vector<std::pair<int64_t, int64_t>> pooled_sizes(at::IntArrayRef output_sizes, int64_t levels, const char* op) {
  const int64_t n = static_cast<int64_t>(output_sizes.size());
  TORCH_CHECK(n == levels || n == 2 * levels, op, ": output_sizes must hold ", levels, " entries (square outputs) or ",
              2 * levels, " entries (out_h, out_w per level) for ", levels, " level(s), got ", n);
  std::vector<std::pair<int64_t, int64_t>> sizes(levels);
  for (int64_t l = 0; l < levels; ++l) {
    sizes[l] = n == levels ? std::make_pair(output_sizes[l], output_sizes[l])
                           : std::make_pair(output_sizes[2 * l], output_sizes[2 * l + 1]);
    TORCH_CHECK(sizes[l].first >= 1 && sizes[l].second >= 1, op, ": output sizes must be >= 1, got ", output_sizes);
  }
  return sizes;
}

void check_rois_and_scales(const at::Tensor& rois, const at::Tensor& reference, const char* reference_name,
                           at::ArrayRef<double> spatial_scales, int64_t levels, int64_t batch_size, const char* op) {
  check_rois(rois, op);
  TORCH_CHECK(rois.scalar_type() == reference.scalar_type(), op, ": rois must have the dtype of ", reference_name,
              " (", reference.scalar_type(), "), got ", rois.scalar_type());
  check_device(rois, reference, op, "rois", reference_name);
  TORCH_CHECK(static_cast<int64_t>(spatial_scales.size()) == levels, op, ": spatial_scales must hold one scale per ",
              "level (", levels, "), got ", spatial_scales.size());
  check_roi_batch_indices(rois, batch_size, op);
}

// ------------------------------------------------------------------------------------------------ scheduling
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

std::vector<Task> make_tasks(const std::vector<Task>& units, int64_t& total_cost) {
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

// ------------------------------------------------------------------------------------------------ kernels
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

// map: [B, H, W, C] of the level; out: [R, C, out_h, out_w].
template <typename T>
void forward_task(const Task& task, const RoiLevel<T>& g, const LevelShape& s, const T* map, T* out,
                  Workspace<T>& ws) {
  axis_tables(g, s, ws);
  const int64_t c0 = task.channel_begin, nc = task.channel_end - task.channel_begin;
  const int64_t bins = s.pooled_h * s.pooled_w;
  // One output row is accumulated channels-last ([out_w, nc]) and then written channel by channel: writing each
  // bin's channels straight into [C, out_h, out_w] would stride by out_h * out_w and thrash the L1 sets.
  ws.buffer.resize(s.pooled_w * nc);
  const T count = static_cast<T>(g.count);
  const T* image = map + g.batch * s.height * s.width * s.channels + c0;
  T* roi_out = out + (task.item * s.channels + c0) * bins;
  for (int64_t p = 0; p < s.pooled_h; ++p) {
    std::fill(ws.buffer.begin(), ws.buffer.end(), static_cast<T>(0));
    for (int64_t q = 0; q < s.pooled_w; ++q) {
      T* __restrict__ acc = ws.buffer.data() + q * nc;
      for_each_sample(g, ws, p, q, s.width, s.channels,
                      [&](T w1, T w2, T w3, T w4, int64_t o1, int64_t o2, int64_t o3, int64_t o4) {
                        const T *v1 = image + o1, *v2 = image + o2, *v3 = image + o3, *v4 = image + o4;
                        for (int64_t c = 0; c < nc; ++c) {
                          acc[c] += w1 * v1[c] + w2 * v2[c] + w3 * v3[c] + w4 * v4[c];
                        }
                      });
    }
    for (int64_t c = 0; c < nc; ++c) {
      T* row_out = roi_out + c * bins + p * s.pooled_w;
      for (int64_t q = 0; q < s.pooled_w; ++q) {
        row_out[q] = ws.buffer[q * nc + c] / count;
      }
    }
  }
}

// grad: [R, C, out_h, out_w] of the level; grad_map: [B, H, W, C]. `rois` lists the RoIs of image task.item.
template <typename T>
void backward_task(const Task& task, const RoiLevel<T>* geometry, const std::vector<int64_t>& rois,
                   const LevelShape& s, const T* grad, T* grad_map, Workspace<T>& ws) {
  const int64_t c0 = task.channel_begin, nc = task.channel_end - task.channel_begin;
  const int64_t bins = s.pooled_h * s.pooled_w;
  ws.buffer.resize(s.pooled_w * nc);
  T* image = grad_map + task.item * s.height * s.width * s.channels + c0;
  for (const int64_t r : rois) {
    const RoiLevel<T>& g = geometry[r];
    axis_tables(g, s, ws);
    const T count = static_cast<T>(g.count);
    const T* roi_grad = grad + (r * s.channels + c0) * bins;
    for (int64_t p = 0; p < s.pooled_h; ++p) {
      // The row's gradients gathered channels-last ([out_w, nc]), already divided by the sample count.
      for (int64_t c = 0; c < nc; ++c) {
        const T* row_grad = roi_grad + c * bins + p * s.pooled_w;
        for (int64_t q = 0; q < s.pooled_w; ++q) {
          ws.buffer[q * nc + c] = row_grad[q] / count;
        }
      }
      for (int64_t q = 0; q < s.pooled_w; ++q) {
        const T* __restrict__ scaled = ws.buffer.data() + q * nc;
        // The four neighbours coincide on the last row/column; sequential adds keep that correct.
        for_each_sample(g, ws, p, q, s.width, s.channels,
                        [&](T w1, T w2, T w3, T w4, int64_t o1, int64_t o2, int64_t o3, int64_t o4) {
                          T *d1 = image + o1, *d2 = image + o2, *d3 = image + o3, *d4 = image + o4;
                          for (int64_t c = 0; c < nc; ++c) {
                            d1[c] += w1 * scaled[c];
                            d2[c] += w2 * scaled[c];
                            d3[c] += w3 * scaled[c];
                            d4[c] += w4 * scaled[c];
                          }
                        });
      }
    }
  }
}

at::ScalarType compute_type(at::ScalarType type) {
  return type == at::kHalf || type == at::kBFloat16 ? at::kFloat : type;
}

// [N, C, H, W] -> contiguous [N, H, W, C] in the compute dtype (one copy; none when already channels-last).
// The trailing contiguous() matters: to() without a dtype change would return the permuted view itself.
at::Tensor channels_last_copy(const at::Tensor& t, at::ScalarType type) {
  return t.permute({0, 2, 3, 1}).to(type, /*non_blocking=*/false, /*copy=*/false, at::MemoryFormat::Contiguous)
      .contiguous();
}

// ------------------------------------------------------------------------------------------------ operators
std::vector<at::Tensor> multilevel_roi_align_cpu(at::TensorList features, const at::Tensor& rois,
                                                 at::ArrayRef<double> spatial_scales, at::IntArrayRef output_sizes,
                                                 int64_t sampling_ratio, bool aligned) {
  check_levels(features, kOp, "features", "[B, C, H, W]");
  const int64_t levels = static_cast<int64_t>(features.size()), batch_size = features[0].size(0);
  for (int64_t l = 1; l < levels; ++l) {
    TORCH_CHECK(features[l].size(0) == batch_size, kOp, ": every level must have the batch size of features[0] (",
                batch_size, "), but features[", l, "] has shape ", features[l].sizes());
  }
  check_rois_and_scales(rois, features[0], "features", spatial_scales, levels, batch_size, kOp);
  const auto pooled = pooled_sizes(output_sizes, levels, kOp);

  const int64_t num_rois = rois.size(0);
  const at::ScalarType type = compute_type(features[0].scalar_type());
  std::vector<LevelShape> shapes(levels);
  std::vector<at::Tensor> outputs(levels), maps(levels);
  for (int64_t l = 0; l < levels; ++l) {
    shapes[l] = LevelShape{features[l].size(1), features[l].size(2), features[l].size(3), pooled[l].first,
                           pooled[l].second};
    outputs[l] = at::empty({num_rois, shapes[l].channels, shapes[l].pooled_h, shapes[l].pooled_w},
                           features[l].options().dtype(type));
    if (num_rois > 0) {
      maps[l] = channels_last_copy(features[l], type);
    }
  }
  if (num_rois > 0) {
    const at::Tensor boxes = rois.to(type).contiguous();
    AT_DISPATCH_FLOATING_TYPES(type, "multilevel_roi_align_cpu", [&] {
      const auto geometry = roi_levels<scalar_t>(boxes, spatial_scales, shapes, sampling_ratio, aligned);
      std::vector<Task> units;
      for (int64_t l = 0; l < levels; ++l) {
        const LevelShape& s = shapes[l];
        for (int64_t r = 0; r < num_rois; ++r) {
          const RoiLevel<scalar_t>& g = geometry[l * num_rois + r];
          units.push_back(Task{l, r, 0, s.channels, s.pooled_h * s.pooled_w * (g.y.grid * g.x.grid + 1)});
        }
      }
      int64_t total_cost = 0;
      const std::vector<Task> tasks = make_tasks(units, total_cost);
      run_tasks<scalar_t>(tasks, total_cost, [&](const Task& task, Workspace<scalar_t>& ws) {
        const int64_t l = task.level;
        forward_task(task, geometry[l * num_rois + task.item], shapes[l], maps[l].data_ptr<scalar_t>(),
                     outputs[l].data_ptr<scalar_t>(), ws);
      });
    });
  }
  if (type != features[0].scalar_type()) {
    for (at::Tensor& out : outputs) {
      out = out.to(features[0].scalar_type());
    }
  }
  return outputs;
}

std::vector<at::Tensor> multilevel_roi_align_backward_cpu(at::TensorList grad_outputs, const at::Tensor& rois,
                                                          at::ArrayRef<double> spatial_scales,
                                                          at::IntArrayRef output_sizes, int64_t sampling_ratio,
                                                          bool aligned, int64_t batch_size, at::IntArrayRef heights,
                                                          at::IntArrayRef widths) {
  check_levels(grad_outputs, kBackwardOp, "grad_outputs", "[R, C, out_h, out_w]");
  const int64_t levels = static_cast<int64_t>(grad_outputs.size());
  TORCH_CHECK(batch_size >= 0, kBackwardOp, ": batch_size must be >= 0, got ", batch_size);
  TORCH_CHECK(static_cast<int64_t>(heights.size()) == levels && static_cast<int64_t>(widths.size()) == levels,
              kBackwardOp, ": heights and widths must hold one size per level (", levels, "), got ", heights.size(),
              " and ", widths.size());
  check_rois_and_scales(rois, grad_outputs[0], "grad_outputs", spatial_scales, levels, batch_size, kBackwardOp);
  const auto pooled = pooled_sizes(output_sizes, levels, kBackwardOp);
  const int64_t num_rois = rois.size(0);
  std::vector<LevelShape> shapes(levels);
  for (int64_t l = 0; l < levels; ++l) {
    const at::Tensor& g = grad_outputs[l];
    TORCH_CHECK(heights[l] >= 0 && widths[l] >= 0, kBackwardOp, ": heights and widths must be >= 0");
    TORCH_CHECK(g.size(0) == num_rois && g.size(2) == pooled[l].first && g.size(3) == pooled[l].second,
                kBackwardOp, ": grad_outputs[", l, "] must have shape [", num_rois, ", C, ", pooled[l].first, ", ",
                pooled[l].second, "], got ", g.sizes());
    shapes[l] = LevelShape{g.size(1), heights[l], widths[l], pooled[l].first, pooled[l].second};
  }

  const at::ScalarType type = compute_type(grad_outputs[0].scalar_type());
  std::vector<at::Tensor> grad_maps(levels), grads(levels);
  for (int64_t l = 0; l < levels; ++l) {
    grad_maps[l] = at::zeros({batch_size, shapes[l].height, shapes[l].width, shapes[l].channels},
                             grad_outputs[l].options().dtype(type));
    if (num_rois > 0) {
      grads[l] = grad_outputs[l].to(type).contiguous();
    }
  }
  if (num_rois > 0) {
    const at::Tensor boxes = rois.to(type).contiguous();
    AT_DISPATCH_FLOATING_TYPES(type, "multilevel_roi_align_backward_cpu", [&] {
      const auto geometry = roi_levels<scalar_t>(boxes, spatial_scales, shapes, sampling_ratio, aligned);
      // RoIs grouped by image, in increasing index order inside each image (fixed summation order).
      std::vector<std::vector<int64_t>> members(batch_size);
      for (int64_t r = 0; r < num_rois; ++r) {
        members[geometry[r].batch].push_back(r);
      }
      std::vector<Task> units;
      for (int64_t l = 0; l < levels; ++l) {
        const LevelShape& s = shapes[l];
        for (int64_t b = 0; b < batch_size; ++b) {
          int64_t cost = 0;
          for (const int64_t r : members[b]) {
            const RoiLevel<scalar_t>& g = geometry[l * num_rois + r];
            cost += s.pooled_h * s.pooled_w * (g.y.grid * g.x.grid + 1);
          }
          if (cost > 0) {
            units.push_back(Task{l, b, 0, s.channels, cost});
          }
        }
      }
      int64_t total_cost = 0;
      const std::vector<Task> tasks = make_tasks(units, total_cost);
      run_tasks<scalar_t>(tasks, total_cost, [&](const Task& task, Workspace<scalar_t>& ws) {
        const int64_t l = task.level;
        backward_task(task, geometry.data() + l * num_rois, members[task.item], shapes[l],
                      grads[l].data_ptr<scalar_t>(), grad_maps[l].data_ptr<scalar_t>(), ws);
      });
    });
  }
  std::vector<at::Tensor> results(levels);
  for (int64_t l = 0; l < levels; ++l) {
    results[l] = grad_maps[l]
                     .permute({0, 3, 1, 2})
                     .to(grad_outputs[l].scalar_type(), false, false, at::MemoryFormat::Contiguous)
                     .contiguous();
  }
  return results;
}

}  // namespace

TORCH_LIBRARY_IMPL(pysalient, CPU, m) {
  m.impl("multilevel_roi_align", &multilevel_roi_align_cpu);
  m.impl("_multilevel_roi_align_backward", &multilevel_roi_align_backward_cpu);
}

}  // namespace pysalient
