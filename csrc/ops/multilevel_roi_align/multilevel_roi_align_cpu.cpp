// Multi-level RoIAlign on the CPU, forward: output l is torchvision's roi_align(features[l], rois, (out_h_l,
// out_w_l), spatial_scales[l], sampling_ratio, aligned), every level computed in one parallel launch.
//
// Each level is read channels-last ([B, H, W, C], one copy per call); the work is cut into (level, RoI, channel
// block) tasks (multilevel_roi_align_cpu.h). Every output element is written by one task, so the result does not
// depend on the schedule. The backward is in multilevel_roi_align_backward_cpu.cpp.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "ops/checks.h"
#include "ops/multilevel_roi_align/multilevel_roi_align_checks.h"
#include "ops/multilevel_roi_align/multilevel_roi_align_cpu.h"

namespace pysalient {
namespace multilevel_roi_align {
namespace {

constexpr const char* kOp = "pysalient::multilevel_roi_align";

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

// [N, C, H, W] -> contiguous [N, H, W, C] in the compute dtype (one copy; none when already channels-last).
// The trailing contiguous() matters: to() without a dtype change would return the permuted view itself.
at::Tensor channels_last_copy(const at::Tensor& t, at::ScalarType type) {
  return t.permute({0, 2, 3, 1}).to(type, /*non_blocking=*/false, /*copy=*/false, at::MemoryFormat::Contiguous)
      .contiguous();
}

// ------------------------------------------------------------------------------------------------ operator
std::vector<at::Tensor> multilevel_roi_align_cpu(at::TensorList features, const at::Tensor& rois,
                                                 at::ArrayRef<double> spatial_scales, at::IntArrayRef output_sizes,
                                                 int64_t sampling_ratio, bool aligned) {
  const PooledSizes pooled = check_forward(features, rois, spatial_scales, output_sizes, kOp, &check_cpu);
  check_sampling_ratio(sampling_ratio, kOp);
  const int64_t levels = static_cast<int64_t>(features.size());

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

}  // namespace

TORCH_LIBRARY_IMPL(pysalient, CPU, m) { m.impl("multilevel_roi_align", &multilevel_roi_align_cpu); }

}  // namespace multilevel_roi_align
}  // namespace pysalient
