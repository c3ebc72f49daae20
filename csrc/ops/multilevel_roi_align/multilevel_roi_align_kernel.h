// RoIAlign math shared by the CPU and CUDA kernels (Mask R-CNN, He et al. 2017, §3 "RoIAlign"), with
// torchvision's exact conventions so that every level of multilevel_roi_align equals torchvision.ops.roi_align:
//   * aligned=True shifts the RoI by half a cell (pixel centres at integer + 0.5); aligned=False is the legacy
//     Detectron behaviour where the RoI extent is forced to be at least one cell.
//   * each output bin averages grid_h x grid_w bilinear samples placed at the centres of a regular sub-grid;
//     sampling_ratio <= 0 picks ceil(roi_extent / pooled) samples per axis, per RoI ("adaptive").
//   * a sample more than one cell outside the map contributes 0 but still counts in the average; a sample
//     between -1 and 0 is clamped to 0; a sample on or past the last row/column reads that row/column alone.
// Bilinear interpolation is separable, so everything is expressed per axis: the 2-D weights of the four
// neighbours are products of one y weight and one x weight, and a sample is valid when both axes are.
#pragma once

#include <c10/macros/Macros.h>

#include <cmath>
#include <cstdint>

namespace pysalient {
namespace roi_align {

// One axis of one RoI on one level: where its bins start, how wide they are, how many samples each bin takes.
template <typename T>
struct RoiAxis {
  T start;
  T bin_size;
  int64_t grid;  // samples per bin along this axis; 0 when the RoI has no samples (empty adaptive grid)
};

// The two neighbours of a sample along one axis and their interpolation weights (low_weight + high_weight = 1).
template <typename T>
struct AxisNeighbours {
  int64_t low;
  int64_t high;
  T low_weight;
  T high_weight;
  bool valid;  // false: the sample lies outside [-1, size] and contributes nothing
};

// first/last are the RoI's corners along this axis in input pixels (x1/x2 or y1/y2), all arithmetic in T as
// torchvision does (the scale is rounded to T first).
template <typename T>
C10_HOST_DEVICE inline RoiAxis<T> roi_axis(T first, T last, T spatial_scale, int64_t pooled, int64_t sampling_ratio,
                                           bool aligned) {
  const T offset = aligned ? static_cast<T>(0.5) : static_cast<T>(0);
  const T start = first * spatial_scale - offset;
  const T end = last * spatial_scale - offset;
  T extent = end - start;
  if (!aligned) {
    // Legacy mode: degenerate and tiny RoIs are stretched to one cell (NaN stays NaN, as std::max would keep it).
    extent = extent < static_cast<T>(1) ? static_cast<T>(1) : extent;
  }
  const T bin_size = extent / static_cast<T>(pooled);
  int64_t grid = sampling_ratio;
  if (sampling_ratio <= 0) {
    // A non-positive or non-finite ceil means no samples (torchvision would loop zero times or be undefined).
    const T samples = std::ceil(extent / static_cast<T>(pooled));
    grid = (samples >= static_cast<T>(1) && samples < static_cast<T>(INT32_MAX)) ? static_cast<int64_t>(samples) : 0;
  }
  return RoiAxis<T>{start, bin_size, grid};
}

// Number the bin average divides by: every sample counts, valid or not, and never less than one.
C10_HOST_DEVICE inline int64_t sample_count(int64_t grid_h, int64_t grid_w) {
  const int64_t count = grid_h * grid_w;
  return count > 1 ? count : 1;
}

// Coordinate (in map cells) of sample `sample` of bin `bin`; the operation order is torchvision's so that the
// results agree bit for bit.
template <typename T>
C10_HOST_DEVICE inline T sample_coordinate(const RoiAxis<T>& axis, int64_t bin, int64_t sample) {
  return axis.start + static_cast<T>(bin) * axis.bin_size +
         (static_cast<T>(sample) + static_cast<T>(0.5)) * axis.bin_size / static_cast<T>(axis.grid);
}

template <typename T>
C10_HOST_DEVICE inline AxisNeighbours<T> axis_neighbours(T coordinate, int64_t size) {
  AxisNeighbours<T> n{0, 0, static_cast<T>(0), static_cast<T>(0), false};
  // Written as a negated range test so that NaN coordinates are invalid too; an empty axis has no neighbours.
  if (size <= 0 || !(coordinate >= static_cast<T>(-1) && coordinate <= static_cast<T>(size))) {
    return n;
  }
  if (coordinate <= static_cast<T>(0)) {
    coordinate = static_cast<T>(0);
  }
  n.low = static_cast<int64_t>(coordinate);
  if (n.low >= size - 1) {
    n.low = size - 1;
    n.high = size - 1;
    coordinate = static_cast<T>(n.low);
  } else {
    n.high = n.low + 1;
  }
  n.high_weight = coordinate - static_cast<T>(n.low);
  n.low_weight = static_cast<T>(1) - n.high_weight;
  n.valid = true;
  return n;
}

}  // namespace roi_align
}  // namespace pysalient
