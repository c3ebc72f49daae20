// Greedy non-maximum suppression: scores sorted with a stable descending sort, keep indices returned in score order.
// The IoU and the suppression test are torchvision's (no +1, IoU > threshold) or, with `legacy`, maskrcnn-benchmark's
// (+1 pixel sizes, IoU >= threshold); see nms_kernel.h.
#include <torch/library.h>

#include <vector>

#include "ops/checks.h"
#include "ops/nms/nms_checks.h"
#include "ops/nms/nms_kernel.h"

namespace pysalient {
namespace {

constexpr const char* kOp = "pysalient::nms";

// Box coordinates and areas of every candidate in decreasing score order: [N] each, contiguous.
template <typename scalar_t>
struct SortedBoxes {
  std::vector<scalar_t> x1, y1, x2, y2, areas;
};

// Flags every box after position `a` that box `a` suppresses. Branch-free over contiguous arrays, so the compiler
// vectorises it; `kLegacy` is a template argument so that the convention is folded out of the loop. A flag, once
// set, stays set: testing suppressed boxes again changes nothing and costs less than skipping them.
template <typename scalar_t, bool kLegacy>
void suppress_tail(const SortedBoxes<scalar_t>& boxes, int64_t a, scalar_t threshold, uint8_t* suppressed) {
  const int64_t n = static_cast<int64_t>(boxes.areas.size());
  const scalar_t ax1 = boxes.x1[a], ay1 = boxes.y1[a], ax2 = boxes.x2[a], ay2 = boxes.y2[a], area = boxes.areas[a];
  const scalar_t* x1 = boxes.x1.data();
  const scalar_t* y1 = boxes.y1.data();
  const scalar_t* x2 = boxes.x2.data();
  const scalar_t* y2 = boxes.y2.data();
  const scalar_t* areas = boxes.areas.data();
  for (int64_t b = a + 1; b < n; ++b) {
    suppressed[b] |= static_cast<uint8_t>(
        nms::suppresses(ax1, ay1, ax2, ay2, area, x1[b], y1[b], x2[b], y2[b], areas[b], threshold, kLegacy));
  }
}

// One serial greedy pass, no parallel region: on a busy machine every barrier of a parallel region per kept box
// waits for a time slice (2 threads were 6-9x slower than 1 under load), and each step is a short, vectorised,
// memory-bound scan. Returns positions in score order.
template <typename scalar_t>
std::vector<int64_t> greedy_keep(const SortedBoxes<scalar_t>& boxes, scalar_t threshold, bool legacy) {
  const int64_t n = static_cast<int64_t>(boxes.areas.size());
  std::vector<uint8_t> suppressed(n, 0);
  std::vector<int64_t> keep;
  keep.reserve(n);
  for (int64_t a = 0; a < n; ++a) {
    if (suppressed[a]) {
      continue;
    }
    keep.push_back(a);
    if (legacy) {
      suppress_tail<scalar_t, true>(boxes, a, threshold, suppressed.data());
    } else {
      suppress_tail<scalar_t, false>(boxes, a, threshold, suppressed.data());
    }
  }
  return keep;
}

template <typename scalar_t>
at::Tensor nms_kernel(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold, bool legacy) {
  const int64_t n = boxes.size(0);
  const at::Tensor order = std::get<1>(scores.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  const int64_t* order_ptr = order.data_ptr<int64_t>();
  const at::Tensor rows = boxes.contiguous();
  const scalar_t* row = rows.data_ptr<scalar_t>();
  SortedBoxes<scalar_t> sorted{std::vector<scalar_t>(n), std::vector<scalar_t>(n), std::vector<scalar_t>(n),
                               std::vector<scalar_t>(n), std::vector<scalar_t>(n)};
  for (int64_t a = 0; a < n; ++a) {
    const scalar_t* box = row + 4 * order_ptr[a];
    sorted.x1[a] = box[0];
    sorted.y1[a] = box[1];
    sorted.x2[a] = box[2];
    sorted.y2[a] = box[3];
    sorted.areas[a] = nms::box_area(box[0], box[1], box[2], box[3], legacy);
  }
  const std::vector<int64_t> kept = greedy_keep<scalar_t>(sorted, static_cast<scalar_t>(iou_threshold), legacy);
  at::Tensor keep = at::empty({static_cast<int64_t>(kept.size())}, boxes.options().dtype(at::kLong));
  int64_t* keep_ptr = keep.data_ptr<int64_t>();
  for (size_t k = 0; k < kept.size(); ++k) {
    keep_ptr[k] = order_ptr[kept[k]];
  }
  return keep;
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
