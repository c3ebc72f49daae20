// Greedy non-maximum suppression: scores sorted with a stable descending sort, keep indices returned in score order.
// The IoU and the suppression test are torchvision's (no +1, IoU > threshold) or, with `legacy`, maskrcnn-benchmark's
// (+1 pixel sizes, IoU >= threshold); see nms_kernel.h.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "ops/checks.h"
#include "ops/nms/nms_checks.h"
#include "ops/nms/nms_kernel.h"

namespace pysalient {
namespace {

constexpr const char* kOp = "pysalient::nms";

// Box coordinates and areas of every candidate, in input order: [N] each.
template <typename scalar_t>
struct BoxColumns {
  const scalar_t* x1;
  const scalar_t* y1;
  const scalar_t* x2;
  const scalar_t* y2;
  const scalar_t* areas;
};

// Marks every not-yet-suppressed box order[begin..end) that the kept box `kept` suppresses.
// Arguments by value: a uint8_t store may alias any object, so values read through at::parallel_for's closure
// would be reloaded after every flag written.
template <typename scalar_t>
void suppress_range(int64_t begin, int64_t end, const int64_t* order, const BoxColumns<scalar_t> boxes,
                    const int64_t kept, const scalar_t threshold, const bool legacy, uint8_t* suppressed) {
  const scalar_t ix1 = boxes.x1[kept], iy1 = boxes.y1[kept], ix2 = boxes.x2[kept], iy2 = boxes.y2[kept];
  const scalar_t iarea = boxes.areas[kept];
  for (int64_t b = begin; b < end; ++b) {
    const int64_t j = order[b];
    if (suppressed[j]) {
      continue;
    }
    if (nms::suppresses(ix1, iy1, ix2, iy2, iarea, boxes.x1[j], boxes.y1[j], boxes.x2[j], boxes.y2[j], boxes.areas[j],
                        threshold, legacy)) {
      suppressed[j] = 1;
    }
  }
}

template <typename scalar_t>
at::Tensor nms_kernel(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold, bool legacy) {
  const int64_t n = boxes.size(0);
  const at::Tensor order = std::get<1>(scores.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  const at::Tensor x1_t = boxes.select(1, 0).contiguous();
  const at::Tensor y1_t = boxes.select(1, 1).contiguous();
  const at::Tensor x2_t = boxes.select(1, 2).contiguous();
  const at::Tensor y2_t = boxes.select(1, 3).contiguous();
  std::vector<scalar_t> areas(n);
  const BoxColumns<scalar_t> columns{x1_t.data_ptr<scalar_t>(), y1_t.data_ptr<scalar_t>(), x2_t.data_ptr<scalar_t>(),
                                     y2_t.data_ptr<scalar_t>(), areas.data()};
  for (int64_t i = 0; i < n; ++i) {
    areas[i] = nms::box_area(columns.x1[i], columns.y1[i], columns.x2[i], columns.y2[i], legacy);
  }
  const int64_t* order_ptr = order.data_ptr<int64_t>();
  const scalar_t threshold = static_cast<scalar_t>(iou_threshold);

  std::vector<uint8_t> suppressed(n, 0);
  uint8_t* suppressed_ptr = suppressed.data();
  std::vector<int64_t> keep;
  keep.reserve(n);
  // Suppressing the tail is embarrassingly parallel; below the grain size parallel_for runs inline.
  constexpr int64_t kGrain = 4096;
  for (int64_t a = 0; a < n; ++a) {
    const int64_t i = order_ptr[a];
    if (suppressed_ptr[i]) {
      continue;
    }
    keep.push_back(i);
    at::parallel_for(a + 1, n, kGrain, [&](int64_t begin, int64_t end) {
      suppress_range<scalar_t>(begin, end, order_ptr, columns, i, threshold, legacy, suppressed_ptr);
    });
  }
  return at::tensor(keep, boxes.options().dtype(at::kLong));
}

at::Tensor nms_cpu(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold, bool legacy) {
  nms::check_inputs(boxes, scores, kOp, &check_cpu);
  pysalient::check_iou_threshold(iou_threshold, kOp);
  if (boxes.size(0) == 0) {
    return at::empty({0}, boxes.options().dtype(at::kLong));
  }
  // Half-precision inputs are compared in float32; fp32/fp64 keep their own precision (as torchvision).
  const bool reduced = boxes.scalar_type() == at::kHalf || boxes.scalar_type() == at::kBFloat16;
  const at::Tensor b = reduced ? boxes.to(at::kFloat) : boxes;
  const at::Tensor s = scores.to(b.scalar_type());
  at::Tensor keep;
  AT_DISPATCH_FLOATING_TYPES(b.scalar_type(), "nms_cpu",
                             [&] { keep = nms_kernel<scalar_t>(b, s, iou_threshold, legacy); });
  return keep;
}

}  // namespace

TORCH_LIBRARY_IMPL(pysalient, CPU, m) { m.impl("nms", &nms_cpu); }

}  // namespace pysalient
