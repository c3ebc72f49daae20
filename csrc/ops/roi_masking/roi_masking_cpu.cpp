// S4Net's RoIMasking on the CPU: out[r] = features[b_r] * mask_r over the full map (nothing is cropped), with
// the binary, expanded-binary or ternary mask of roi_masking_kernel.h. The backward sums mask_r * grad_out[r]
// over the RoIs of each image; every (image, channel) plane is owned by one task, which visits its RoIs in
// increasing index order, so the result is deterministic without atomics.
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <array>
#include <cmath>
#include <vector>

#include "ops/checks.h"
#include "ops/roi_masking/roi_masking_checks.h"
#include "ops/roi_masking/roi_masking_kernel.h"

namespace pysalient {
namespace {

constexpr const char* kOp = "pysalient::roi_masking";
constexpr const char* kBackwardOp = "pysalient::_roi_masking_backward";

using roi_masking::RoiCells;

// A run [begin, end) of one row where the mask is constant.
struct Segment {
  int64_t begin, end;
  int value;
};

// The row y of a mask as five runs covering [0, width): outside, ring, box, ring, outside (some may be empty).
std::array<Segment, 5> row_segments(const RoiCells& c, int ring, int64_t y, int64_t width) {
  if (y >= c.y0 && y < c.ye) {
    return {Segment{0, c.ex0, 0}, Segment{c.ex0, c.x0, ring}, Segment{c.x0, c.xe, 1}, Segment{c.xe, c.exe, ring},
            Segment{c.exe, width, 0}};
  }
  if (y >= c.ey0 && y < c.eye) {
    return {Segment{0, c.ex0, 0}, Segment{c.ex0, c.exe, ring}, Segment{c.exe, width, 0}, Segment{width, width, 0},
            Segment{width, width, 0}};
  }
  return {Segment{0, width, 0}, Segment{width, width, 0}, Segment{width, width, 0}, Segment{width, width, 0},
          Segment{width, width, 0}};
}

// Per-RoI batch index and cell geometry, computed once in double precision (the contract's arithmetic).
void roi_geometry(const at::Tensor& rois, double spatial_scale, double expand_ratio, int64_t height, int64_t width,
                  std::vector<int64_t>& batch, std::vector<RoiCells>& cells) {
  const at::Tensor r64 = rois.to(at::kDouble).contiguous();
  const double* p = r64.data_ptr<double>();
  const int64_t n = rois.size(0);
  batch.resize(n);
  cells.resize(n);
  for (int64_t r = 0; r < n; ++r) {
    const double* roi = p + 5 * r;
    batch[r] = static_cast<int64_t>(roi[0]);
    cells[r] = roi_masking::roi_cells(roi[1], roi[2], roi[3], roi[4], spatial_scale, expand_ratio, height, width);
  }
}

// Enough planes per task to amortise the scheduling; small maps get many planes per task.
int64_t grain_for(int64_t plane_size) {
  return std::max<int64_t>(1, at::internal::GRAIN_SIZE / std::max<int64_t>(1, plane_size));
}

template <typename scalar_t>
void forward_kernel(const at::Tensor& features, const std::vector<int64_t>& batch,
                    const std::vector<RoiCells>& cells, int64_t mode, at::Tensor& output) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int64_t channels = features.size(1), height = features.size(2), width = features.size(3);
  const int64_t plane = height * width;
  const scalar_t* src_base = features.data_ptr<scalar_t>();
  scalar_t* dst_base = output.data_ptr<scalar_t>();
  const int ring = roi_masking::ring_value(mode);
  const int64_t total = output.size(0) * channels;
  at::parallel_for(0, total, grain_for(plane), [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t r = task / channels;
      const int64_t c = task % channels;
      const scalar_t* src = src_base + (batch[r] * channels + c) * plane;
      scalar_t* dst = dst_base + task * plane;
      for (int64_t y = 0; y < height; ++y) {
        // Multiplying (also by 0) rather than assigning keeps the definition out = features * mask exactly,
        // including how non-finite features propagate.
        for (const Segment& s : row_segments(cells[r], ring, y, width)) {
          const opmath_t value = static_cast<opmath_t>(s.value);
          for (int64_t x = s.begin; x < s.end; ++x) {
            dst[y * width + x] = static_cast<scalar_t>(static_cast<opmath_t>(src[y * width + x]) * value);
          }
        }
      }
    }
  });
}

template <typename scalar_t>
void backward_kernel(const at::Tensor& grad_output, const std::vector<int64_t>& batch,
                     const std::vector<RoiCells>& cells, int64_t mode, at::Tensor& grad_features) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int64_t batch_size = grad_features.size(0), channels = grad_features.size(1);
  const int64_t height = grad_features.size(2), width = grad_features.size(3);
  const int64_t plane = height * width;
  const int ring = roi_masking::ring_value(mode);
  // RoIs grouped by image (counting sort: increasing RoI index inside each image, hence a fixed summation order).
  std::vector<int64_t> first(batch_size + 1, 0);
  for (const int64_t b : batch) {
    ++first[b + 1];
  }
  for (int64_t b = 0; b < batch_size; ++b) {
    first[b + 1] += first[b];
  }
  std::vector<int64_t> members(batch.size());
  std::vector<int64_t> fill(first.begin(), first.end() - 1);
  for (int64_t r = 0; r < static_cast<int64_t>(batch.size()); ++r) {
    members[fill[batch[r]]++] = r;
  }
  const scalar_t* grad_base = grad_output.data_ptr<scalar_t>();
  scalar_t* dst_base = grad_features.data_ptr<scalar_t>();
  at::parallel_for(0, batch_size * channels, grain_for(plane), [&](int64_t begin, int64_t end) {
    std::vector<opmath_t> sum(plane);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / channels;
      const int64_t c = task % channels;
      if (first[b] == first[b + 1]) {
        continue;  // grad_features is zero-initialised
      }
      std::fill(sum.begin(), sum.end(), opmath_t(0));
      for (int64_t m = first[b]; m < first[b + 1]; ++m) {
        const int64_t r = members[m];
        const RoiCells& cell = cells[r];
        const scalar_t* grad = grad_base + (r * channels + c) * plane;
        // Cells where the mask is 0 contribute nothing, so only the expanded box is visited.
        for (int64_t y = cell.ey0; y < cell.eye; ++y) {
          for (const Segment& s : row_segments(cell, ring, y, width)) {
            if (s.value == 0) {
              continue;
            }
            opmath_t* acc = sum.data() + y * width;
            const scalar_t* g = grad + y * width;
            if (s.value > 0) {
              for (int64_t x = s.begin; x < s.end; ++x) acc[x] += static_cast<opmath_t>(g[x]);
            } else {
              for (int64_t x = s.begin; x < s.end; ++x) acc[x] -= static_cast<opmath_t>(g[x]);
            }
          }
        }
      }
      scalar_t* dst = dst_base + task * plane;
      for (int64_t i = 0; i < plane; ++i) {
        dst[i] = static_cast<scalar_t>(sum[i]);
      }
    }
  });
}

at::Tensor roi_masking_cpu(const at::Tensor& features, const at::Tensor& rois, double spatial_scale,
                           double expand_ratio, int64_t mode) {
  roi_masking::check_forward(features, rois, spatial_scale, expand_ratio, mode, kOp, &check_cpu);
  const int64_t num_rois = rois.size(0);
  at::Tensor output =
      at::empty({num_rois, features.size(1), features.size(2), features.size(3)}, features.options());
  if (output.numel() == 0) {
    return output;
  }
  std::vector<int64_t> batch;
  std::vector<RoiCells> cells;
  roi_geometry(rois, spatial_scale, expand_ratio, features.size(2), features.size(3), batch, cells);
  const at::Tensor input = features.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "roi_masking_cpu",
                                  [&] { forward_kernel<scalar_t>(input, batch, cells, mode, output); });
  return output;
}

at::Tensor roi_masking_backward_cpu(const at::Tensor& grad_output, const at::Tensor& rois, double spatial_scale,
                                    double expand_ratio, int64_t mode, int64_t batch_size) {
  roi_masking::check_backward(grad_output, rois, spatial_scale, expand_ratio, mode, batch_size, kBackwardOp,
                              &check_cpu);
  at::Tensor grad_features =
      at::zeros({batch_size, grad_output.size(1), grad_output.size(2), grad_output.size(3)}, grad_output.options());
  if (grad_output.numel() == 0 || grad_features.numel() == 0) {
    return grad_features;
  }
  std::vector<int64_t> batch;
  std::vector<RoiCells> cells;
  roi_geometry(rois, spatial_scale, expand_ratio, grad_output.size(2), grad_output.size(3), batch, cells);
  const at::Tensor grad = grad_output.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "roi_masking_backward_cpu",
                                  [&] { backward_kernel<scalar_t>(grad, batch, cells, mode, grad_features); });
  return grad_features;
}

}  // namespace

TORCH_LIBRARY_IMPL(pysalient, CPU, m) {
  m.impl("roi_masking", &roi_masking_cpu);
  m.impl("_roi_masking_backward", &roi_masking_backward_cpu);
}

}  // namespace pysalient
