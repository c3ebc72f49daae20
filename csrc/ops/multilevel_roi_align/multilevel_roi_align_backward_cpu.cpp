// Multi-level RoIAlign on the CPU, backward: the gradient of every level's features from the gradient of every
// level's output (multilevel_roi_align_cpu.cpp is the forward).
//
// The work is cut into (level, image, channel block) tasks (multilevel_roi_align_cpu.h): each owns a slice of one
// image's channels-last gradient map and adds the RoIs of that image in increasing index order, which is
// deterministic and race-free without atomics.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <vector>

#include "ops/checks.h"
#include "ops/multilevel_roi_align/multilevel_roi_align_checks.h"
#include "ops/multilevel_roi_align/multilevel_roi_align_cpu.h"

namespace pysalient {
namespace multilevel_roi_align {
namespace {

constexpr const char* kBackwardOp = "pysalient::_multilevel_roi_align_backward";

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

// ------------------------------------------------------------------------------------------------ operator
std::vector<at::Tensor> multilevel_roi_align_backward_cpu(at::TensorList grad_outputs, const at::Tensor& rois,
                                                          at::ArrayRef<double> spatial_scales,
                                                          at::IntArrayRef output_sizes, int64_t sampling_ratio,
                                                          bool aligned, int64_t batch_size, at::IntArrayRef heights,
                                                          at::IntArrayRef widths) {
  const PooledSizes pooled = check_backward(grad_outputs, rois, spatial_scales, output_sizes, batch_size, heights,
                                            widths, kBackwardOp, &check_cpu);
  const int64_t levels = static_cast<int64_t>(grad_outputs.size());
  const int64_t num_rois = rois.size(0);
  std::vector<LevelShape> shapes(levels);
  for (int64_t l = 0; l < levels; ++l) {
    shapes[l] = LevelShape{grad_outputs[l].size(1), heights[l], widths[l], pooled[l].first, pooled[l].second};
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
  m.impl("_multilevel_roi_align_backward", &multilevel_roi_align_backward_cpu);
}

}  // namespace multilevel_roi_align
}  // namespace pysalient
