// Multi-level RoIAlign on CUDA, the same contract as multilevel_roi_align_cpu.cpp: output l is torchvision's
// roi_align(features[l], rois, (out_h_l, out_w_l), spatial_scales[l], sampling_ratio, aligned).
//
// Forward: one thread per output element (level, RoI, channel, bin) of all levels together, so every level runs
// in one launch (levels are passed by value, kMaxLevels per launch). The sample positions and weights come from
// multilevel_roi_align_kernel.h and are summed in the CPU kernel's order, so fp32/fp64 results match the CPU.
// Half precision is computed in float (as on the CPU) and rounded once at the end.
//
// Backward (NOT deterministic): one thread per gradient element scatters its weighted share into the level's
// gradient map with atomicAdd, in the compute dtype (float for fp16/bf16); the order of the additions, hence the
// last bits of the result, varies from run to run. torch.use_deterministic_algorithms(True) makes it raise.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "ops/checks.h"
#include "ops/cuda_utils.cuh"
#include "ops/multilevel_roi_align/multilevel_roi_align_checks.h"
#include "ops/multilevel_roi_align/multilevel_roi_align_kernel.h"

namespace pysalient {
namespace {

constexpr const char* kOp = "pysalient::multilevel_roi_align";
constexpr const char* kBackwardOp = "pysalient::_multilevel_roi_align_backward";

using multilevel_roi_align::check_backward;
using multilevel_roi_align::check_forward;
using multilevel_roi_align::PooledSizes;

// ------------------------------------------------------------------------------------------------ kernels
constexpr int kMaxLevels = 8;

// One level as the kernels see it: `map` is the level's features (forward) or gradient map (backward), `pooled`
// its output (forward) or output gradient (backward), both contiguous NCHW. Elements [begin, end) of the launch's
// flat index space are this level's R * C * out_h * out_w pooled elements.
template <typename map_t, typename pooled_t, typename T>
struct Level {
  map_t* map;
  pooled_t* pooled;
  int64_t channels, height, width, pooled_h, pooled_w;
  T scale;
  int64_t begin, end;
};

template <typename map_t, typename pooled_t, typename T>
struct Levels {
  Level<map_t, pooled_t, T> level[kMaxLevels];
  int count;
};

// Decodes a flat index into (level, RoI, channel, bin row, bin column) and the RoI's geometry on that level.
template <typename map_t, typename pooled_t, typename T>
struct Element {
  Level<map_t, pooled_t, T> level;
  int64_t local, c, p, q, batch;
  roi_align::RoiAxis<T> y, x;
};

template <typename map_t, typename pooled_t, typename T, typename roi_t>
__device__ inline Element<map_t, pooled_t, T> decode(const Levels<map_t, pooled_t, T>& levels, int64_t index,
                                                     const roi_t* rois, int64_t sampling_ratio, bool aligned) {
  Element<map_t, pooled_t, T> e;
  // Static indices only (a dynamic index into a kernel parameter would copy the whole struct to local memory);
  // exactly one level holds the index, empty levels (begin == end) never match.
  e.level = levels.level[0];
#pragma unroll
  for (int l = 1; l < kMaxLevels; ++l) {
    if (l < levels.count && index >= levels.level[l].begin && index < levels.level[l].end) {
      e.level = levels.level[l];
    }
  }
  const auto& s = e.level;
  e.local = index - s.begin;
  e.q = e.local % s.pooled_w;
  e.p = (e.local / s.pooled_w) % s.pooled_h;
  e.c = (e.local / (s.pooled_w * s.pooled_h)) % s.channels;
  const int64_t r = e.local / (s.pooled_w * s.pooled_h * s.channels);
  // rois.to(T) on the CPU: widening is exact, so the geometry is computed from the same values.
  const roi_t* roi = rois + 5 * r;
  e.batch = static_cast<int64_t>(static_cast<T>(roi[0]));
  e.x = roi_align::roi_axis<T>(static_cast<T>(roi[1]), static_cast<T>(roi[3]), s.scale, s.pooled_w, sampling_ratio,
                               aligned);
  e.y = roi_align::roi_axis<T>(static_cast<T>(roi[2]), static_cast<T>(roi[4]), s.scale, s.pooled_h, sampling_ratio,
                               aligned);
  return e;
}

template <typename scalar_t, typename T>
__global__ void forward_kernel(Levels<const scalar_t, scalar_t, T> levels, const scalar_t* __restrict__ rois,
                               int64_t total, int64_t sampling_ratio, bool aligned) {
  for (int64_t index = cuda::grid_start(); index < total; index += cuda::grid_stride()) {
    const auto e = decode(levels, index, rois, sampling_ratio, aligned);
    const auto& s = e.level;
    const scalar_t* map = s.map + (e.batch * s.channels + e.c) * s.height * s.width;
    // Same loops, skips and operation order as for_each_sample/forward_task of the CPU kernel.
    T sum = static_cast<T>(0);
    for (int64_t i = 0; i < e.y.grid; ++i) {
      const auto sy = roi_align::axis_neighbours(roi_align::sample_coordinate(e.y, e.p, i), s.height);
      if (!sy.valid) {
        continue;
      }
      for (int64_t j = 0; j < e.x.grid; ++j) {
        const auto sx = roi_align::axis_neighbours(roi_align::sample_coordinate(e.x, e.q, j), s.width);
        if (!sx.valid) {
          continue;
        }
        const T w1 = sy.low_weight * sx.low_weight, w2 = sy.low_weight * sx.high_weight;
        const T w3 = sy.high_weight * sx.low_weight, w4 = sy.high_weight * sx.high_weight;
        const T v1 = static_cast<T>(map[sy.low * s.width + sx.low]);
        const T v2 = static_cast<T>(map[sy.low * s.width + sx.high]);
        const T v3 = static_cast<T>(map[sy.high * s.width + sx.low]);
        const T v4 = static_cast<T>(map[sy.high * s.width + sx.high]);
        sum += w1 * v1 + w2 * v2 + w3 * v3 + w4 * v4;
      }
    }
    s.pooled[e.local] = static_cast<scalar_t>(sum / static_cast<T>(roi_align::sample_count(e.y.grid, e.x.grid)));
  }
}

template <typename scalar_t, typename T>
__global__ void backward_kernel(Levels<T, const scalar_t, T> levels, const scalar_t* __restrict__ rois, int64_t total,
                                int64_t sampling_ratio, bool aligned) {
  for (int64_t index = cuda::grid_start(); index < total; index += cuda::grid_stride()) {
    const auto e = decode(levels, index, rois, sampling_ratio, aligned);
    const auto& s = e.level;
    const T count = static_cast<T>(roi_align::sample_count(e.y.grid, e.x.grid));
    const T scaled = static_cast<T>(s.pooled[e.local]) / count;
    T* map = s.map + (e.batch * s.channels + e.c) * s.height * s.width;
    for (int64_t i = 0; i < e.y.grid; ++i) {
      const auto sy = roi_align::axis_neighbours(roi_align::sample_coordinate(e.y, e.p, i), s.height);
      if (!sy.valid) {
        continue;
      }
      for (int64_t j = 0; j < e.x.grid; ++j) {
        const auto sx = roi_align::axis_neighbours(roi_align::sample_coordinate(e.x, e.q, j), s.width);
        if (!sx.valid) {
          continue;
        }
        // The neighbours coincide on the last row/column; separate atomics keep that correct.
        atomicAdd(map + sy.low * s.width + sx.low, sy.low_weight * sx.low_weight * scaled);
        atomicAdd(map + sy.low * s.width + sx.high, sy.low_weight * sx.high_weight * scaled);
        atomicAdd(map + sy.high * s.width + sx.low, sy.high_weight * sx.low_weight * scaled);
        atomicAdd(map + sy.high * s.width + sx.high, sy.high_weight * sx.high_weight * scaled);
      }
    }
  }
}

// Launches `kernel` over levels [first, first + kMaxLevels) at a time; make_level(l, offset) fills one level.
template <typename LevelsT, typename MakeLevel, typename Launch>
void launch_in_chunks(int64_t num_levels, const MakeLevel& make_level, const Launch& launch) {
  for (int64_t first = 0; first < num_levels; first += kMaxLevels) {
    LevelsT chunk{};
    int64_t total = 0;
    chunk.count = static_cast<int>(std::min<int64_t>(kMaxLevels, num_levels - first));
    for (int l = 0; l < chunk.count; ++l) {
      chunk.level[l] = make_level(first + l, total);
      total = chunk.level[l].end;
    }
    if (total > 0) {
      launch(chunk, total);
    }
  }
}

at::ScalarType compute_type(at::ScalarType type) {
  return type == at::kHalf || type == at::kBFloat16 ? at::kFloat : type;
}

// ------------------------------------------------------------------------------------------------ operators
std::vector<at::Tensor> multilevel_roi_align_cuda(at::TensorList features, const at::Tensor& rois,
                                                  at::ArrayRef<double> spatial_scales, at::IntArrayRef output_sizes,
                                                  int64_t sampling_ratio, bool aligned) {
  const PooledSizes pooled = check_forward(features, rois, spatial_scales, output_sizes, kOp, &check_cuda);
  pysalient::check_sampling_ratio(sampling_ratio, kOp);
  const int64_t levels = static_cast<int64_t>(features.size());
  const c10::cuda::CUDAGuard guard(features[0].device());

  const int64_t num_rois = rois.size(0);
  std::vector<at::Tensor> outputs(levels), maps(levels);
  for (int64_t l = 0; l < levels; ++l) {
    outputs[l] = at::empty({num_rois, features[l].size(1), pooled[l].first, pooled[l].second}, features[l].options());
  }
  if (num_rois == 0) {
    return outputs;
  }
  for (int64_t l = 0; l < levels; ++l) {
    maps[l] = features[l].contiguous();
  }
  const at::Tensor boxes = rois.contiguous();
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, features[0].scalar_type(), "multilevel_roi_align_cuda",
                                  [&] {
    using T = at::opmath_type<scalar_t>;
    using LevelsT = Levels<const scalar_t, scalar_t, T>;
    launch_in_chunks<LevelsT>(
        levels,
        [&](int64_t l, int64_t offset) {
          const at::Tensor& out = outputs[l];
          return Level<const scalar_t, scalar_t, T>{maps[l].data_ptr<scalar_t>(), out.data_ptr<scalar_t>(),
                                                    out.size(1), maps[l].size(2), maps[l].size(3), out.size(2),
                                                    out.size(3), static_cast<T>(spatial_scales[l]), offset,
                                                    offset + out.numel()};
        },
        [&](const LevelsT& chunk, int64_t total) {
          forward_kernel<scalar_t, T><<<cuda::blocks_for(total), cuda::kThreads, 0, stream>>>(
              chunk, boxes.data_ptr<scalar_t>(), total, sampling_ratio, aligned);
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        });
  });
  return outputs;
}

std::vector<at::Tensor> multilevel_roi_align_backward_cuda(at::TensorList grad_outputs, const at::Tensor& rois,
                                                           at::ArrayRef<double> spatial_scales,
                                                           at::IntArrayRef output_sizes, int64_t sampling_ratio,
                                                           bool aligned, int64_t batch_size, at::IntArrayRef heights,
                                                           at::IntArrayRef widths) {
  check_backward(grad_outputs, rois, spatial_scales, output_sizes, batch_size, heights, widths, kBackwardOp,
                 &check_cuda);
  const int64_t levels = static_cast<int64_t>(grad_outputs.size());
  const int64_t num_rois = rois.size(0);
  const c10::cuda::CUDAGuard guard(grad_outputs[0].device());
  const at::ScalarType type = compute_type(grad_outputs[0].scalar_type());
  std::vector<at::Tensor> grad_maps(levels), grads(levels);
  for (int64_t l = 0; l < levels; ++l) {
    grad_maps[l] = at::zeros({batch_size, grad_outputs[l].size(1), heights[l], widths[l]},
                             grad_outputs[l].options().dtype(type));
    grads[l] = grad_outputs[l].contiguous();
  }
  if (num_rois > 0) {
    at::globalContext().alertNotDeterministic("pysalient::_multilevel_roi_align_backward (CUDA)");
    const at::Tensor boxes = rois.contiguous();
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_outputs[0].scalar_type(),
                                    "multilevel_roi_align_backward_cuda", [&] {
      using T = at::opmath_type<scalar_t>;
      using LevelsT = Levels<T, const scalar_t, T>;
      launch_in_chunks<LevelsT>(
          levels,
          [&](int64_t l, int64_t offset) {
            const at::Tensor& g = grads[l];
            return Level<T, const scalar_t, T>{grad_maps[l].data_ptr<T>(), g.data_ptr<scalar_t>(), g.size(1),
                                               heights[l], widths[l], g.size(2), g.size(3),
                                               static_cast<T>(spatial_scales[l]), offset, offset + g.numel()};
          },
          [&](const LevelsT& chunk, int64_t total) {
            backward_kernel<scalar_t, T><<<cuda::blocks_for(total), cuda::kThreads, 0, stream>>>(
                chunk, boxes.data_ptr<scalar_t>(), total, sampling_ratio, aligned);
            C10_CUDA_KERNEL_LAUNCH_CHECK();
          });
    });
  }
  std::vector<at::Tensor> results(levels);
  for (int64_t l = 0; l < levels; ++l) {
    results[l] = grad_maps[l].to(grad_outputs[l].scalar_type());
  }
  return results;
}

}  // namespace

TORCH_LIBRARY_IMPL(pysalient, CUDA, m) {
  m.impl("multilevel_roi_align", &multilevel_roi_align_cuda);
  m.impl("_multilevel_roi_align_backward", &multilevel_roi_align_backward_cuda);
}

}  // namespace pysalient
