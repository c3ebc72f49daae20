// InstanceFCN's assembling module on the CPU: out[r, i, j] = score_maps[b, channel(i, j), y0 + i, x0 + j], zero
// where the window leaves the map. The backward scatters grad_out back; windows overlap, so each
// (image, score map) plane is owned by one task that visits its windows in increasing index order —
// deterministic and race-free without atomics.
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "ops/assemble_instances/assemble_instances_checks.h"
#include "ops/assemble_instances/assemble_instances_kernel.h"
#include "ops/checks.h"

namespace pysalient {
namespace {

constexpr const char* kOp = "pysalient::assemble_instances";
constexpr const char* kBackwardOp = "pysalient::_assemble_instances_backward";

using assemble_instances::band_begin;
using assemble_instances::clamp_offset;
using assemble_instances::score_channel;

int64_t grain_for(int64_t work_per_item) {
  return std::max<int64_t>(1, at::internal::GRAIN_SIZE / std::max<int64_t>(1, work_per_item));
}

template <typename scalar_t>
void forward_kernel(const at::Tensor& score_maps, const at::Tensor& windows, int64_t m, int64_t k,
                    at::Tensor& output) {
  const int64_t channels = score_maps.size(1), height = score_maps.size(2), width = score_maps.size(3);
  const int64_t plane = height * width;
  const scalar_t* src = score_maps.data_ptr<scalar_t>();
  const int64_t* win = windows.data_ptr<int64_t>();
  scalar_t* dst_base = output.data_ptr<scalar_t>();
  // One task per output row (r, i).
  at::parallel_for(0, output.size(0) * m, grain_for(m), [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t r = task / m;
      const int64_t i = task % m;
      const int64_t b = win[3 * r];
      const int64_t y = clamp_offset(win[3 * r + 1], m, height) + i;
      const int64_t x0 = clamp_offset(win[3 * r + 2], m, width);
      scalar_t* dst = dst_base + task * m;
      if (y < 0 || y >= height) {
        std::fill(dst, dst + m, scalar_t(0));
        continue;
      }
      const scalar_t* row = src + b * channels * plane + y * width;
      for (int64_t j = 0; j < m; ++j) {
        const int64_t x = x0 + j;
        dst[j] = (x < 0 || x >= width) ? scalar_t(0) : row[score_channel(i, j, m, k) * plane + x];
      }
    }
  });
}

template <typename scalar_t>
void backward_kernel(const at::Tensor& grad_output, const at::Tensor& windows, int64_t m, int64_t k,
                     at::Tensor& grad_maps) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int64_t batch_size = grad_maps.size(0), channels = grad_maps.size(1);
  const int64_t height = grad_maps.size(2), width = grad_maps.size(3);
  const int64_t plane = height * width;
  const int64_t num_windows = windows.size(0);
  const int64_t* win = windows.data_ptr<int64_t>();
  // Windows grouped by image (counting sort keeps increasing window index inside an image).
  std::vector<int64_t> first(batch_size + 1, 0);
  for (int64_t r = 0; r < num_windows; ++r) {
    ++first[win[3 * r] + 1];
  }
  for (int64_t b = 0; b < batch_size; ++b) {
    first[b + 1] += first[b];
  }
  std::vector<int64_t> members(num_windows);
  std::vector<int64_t> fill(first.begin(), first.end() - 1);
  for (int64_t r = 0; r < num_windows; ++r) {
    members[fill[win[3 * r]]++] = r;
  }
  const scalar_t* grad_base = grad_output.data_ptr<scalar_t>();
  scalar_t* dst_base = grad_maps.data_ptr<scalar_t>();
  at::parallel_for(0, batch_size * channels, grain_for(plane), [&](int64_t begin, int64_t end) {
    std::vector<opmath_t> sum(plane);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / channels;
      const int64_t c = task % channels;
      // Window cells that read score map c: sub-window row c / k, sub-window column c % k.
      const int64_t i_begin = band_begin(c / k, m, k), i_end = band_begin(c / k + 1, m, k);
      const int64_t j_begin = band_begin(c % k, m, k), j_end = band_begin(c % k + 1, m, k);
      if (first[b] == first[b + 1] || i_begin == i_end || j_begin == j_end) {
        continue;  // grad_maps is zero-initialised
      }
      std::fill(sum.begin(), sum.end(), opmath_t(0));
      for (int64_t n = first[b]; n < first[b + 1]; ++n) {
        const int64_t r = members[n];
        const int64_t y0 = clamp_offset(win[3 * r + 1], m, height);
        const int64_t x0 = clamp_offset(win[3 * r + 2], m, width);
        const int64_t ib = std::max(i_begin, -y0), ie = std::min(i_end, height - y0);
        const int64_t jb = std::max(j_begin, -x0), je = std::min(j_end, width - x0);
        const scalar_t* grad = grad_base + r * m * m;
        for (int64_t i = ib; i < ie; ++i) {
          opmath_t* acc = sum.data() + (y0 + i) * width;
          const scalar_t* g = grad + i * m;
          for (int64_t j = jb; j < je; ++j) {
            acc[x0 + j] += static_cast<opmath_t>(g[j]);
          }
        }
      }
      scalar_t* dst = dst_base + task * plane;
      for (int64_t p = 0; p < plane; ++p) {
        dst[p] = static_cast<scalar_t>(sum[p]);
      }
    }
  });
}

at::Tensor assemble_instances_cpu(const at::Tensor& score_maps, const at::Tensor& windows, int64_t m, int64_t k) {
  assemble_instances::check_forward(score_maps, windows, m, k, kOp, &check_cpu);
  at::Tensor output = at::empty({windows.size(0), m, m}, score_maps.options());
  if (output.numel() == 0) {
    return output;
  }
  const at::Tensor maps = score_maps.contiguous();
  const at::Tensor win = windows.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, maps.scalar_type(), "assemble_instances_cpu",
                                  [&] { forward_kernel<scalar_t>(maps, win, m, k, output); });
  return output;
}

at::Tensor assemble_instances_backward_cpu(const at::Tensor& grad_output, const at::Tensor& windows, int64_t m,
                                           int64_t k, int64_t batch_size, int64_t height, int64_t width) {
  assemble_instances::check_backward(grad_output, windows, m, k, batch_size, height, width, kBackwardOp, &check_cpu);
  at::Tensor grad_maps = at::zeros({batch_size, k * k, height, width}, grad_output.options());
  if (grad_output.numel() == 0 || grad_maps.numel() == 0) {
    return grad_maps;
  }
  const at::Tensor grad = grad_output.contiguous();
  const at::Tensor win = windows.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "assemble_instances_backward_cpu",
                                  [&] { backward_kernel<scalar_t>(grad, win, m, k, grad_maps); });
  return grad_maps;
}

}  // namespace

TORCH_LIBRARY_IMPL(pysalient, CPU, m) {
  m.impl("assemble_instances", &assemble_instances_cpu);
  m.impl("_assemble_instances_backward", &assemble_instances_backward_cpu);
}

}  // namespace pysalient
