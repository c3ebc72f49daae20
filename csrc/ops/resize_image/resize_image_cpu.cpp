// Pillow-identical uint8 bilinear resize (Image.resize(..., BILINEAR)), the test-time resize of detectron2's
// ResizeShortestEdge. Separable: one pass per axis, the first rounded to uint8 before the second reads it (the
// order follows Pillow, see resize_vertical_first); a pass is skipped when its dimension does not change (Pillow
// does the same, and the pass would be the identity anyway). Tap tables are built once per axis, rows run in
// parallel.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "ops/checks.h"
#include "ops/resize_image/resize_image_checks.h"
#include "ops/resize_image/resize_image_kernel.h"
#include "ops/resize_image/resize_image_passes.h"

namespace pysalient {
namespace {

constexpr const char* kOp = "pysalient::resize_image";

// Fixed-point taps of every output sample of one axis: sample i reads inputs first[i] .. first[i]+count[i]-1
// with weights weights[i * max_taps + t].
struct TapTable {
  int64_t max_taps = 0;
  std::vector<int64_t> first;
  std::vector<int64_t> count;
  std::vector<int32_t> weights;
};

TapTable make_tap_table(int64_t n_in, int64_t n_out) {
  const ResizeAxis axis = make_resize_axis(n_in, n_out);
  TapTable table;
  table.max_taps = resize_max_taps(axis);
  table.first.resize(n_out);
  table.count.resize(n_out);
  table.weights.assign(n_out * table.max_taps, 0);
  std::vector<double> raw(table.max_taps);
  for (int64_t i = 0; i < n_out; ++i) {
    const double center = resize_center(axis, i);
    int64_t first = 0;
    int64_t end = 0;
    resize_tap_range(axis, center, n_in, &first, &end);
    const int64_t count = end > first ? end - first : 0;
    TORCH_INTERNAL_ASSERT(count <= table.max_taps);
    // Summed in tap order, then each weight divided by the sum: the order Pillow normalises in.
    double total = 0.0;
    for (int64_t t = 0; t < count; ++t) {
      raw[t] = resize_tap_weight(axis, center, first + t);
      total += raw[t];
    }
    for (int64_t t = 0; t < count; ++t) {
      const double weight = total != 0.0 ? raw[t] / total : raw[t];
      table.weights[i * table.max_taps + t] = resize_fixed_point(weight);
    }
    table.first[i] = first;
    table.count[i] = count;
  }
  return table;
}

// The taps of one axis as plain pointers, handed to the loops below by value: a uint8_t store may alias any object,
// so sizes read through at::parallel_for's closure would be reloaded after every output byte.
struct TapView {
  const int64_t* first;
  const int64_t* count;
  const int32_t* weights;  // [n_out, max_taps]
  int64_t max_taps;
};

TapView view_of(const TapTable& table) {
  return TapView{table.first.data(), table.count.data(), table.weights.data(), table.max_taps};
}

// Rows [begin, end) of resize_rows.
void resize_row_range(const uint8_t* input, uint8_t* output, int64_t begin, int64_t end, int64_t width,
                      int64_t out_width, int64_t channels, const TapView taps) {
  for (int64_t row = begin; row < end; ++row) {
    const uint8_t* src = input + row * width * channels;
    uint8_t* dst = output + row * out_width * channels;
    for (int64_t x = 0; x < out_width; ++x) {
      const uint8_t* window = src + taps.first[x] * channels;
      const int32_t* weights = taps.weights + x * taps.max_taps;
      const int64_t count = taps.count[x];
      for (int64_t c = 0; c < channels; ++c) {
        int32_t accumulator = kResizeRounding;
        for (int64_t t = 0; t < count; ++t) {
          accumulator += static_cast<int32_t>(window[t * channels + c]) * weights[t];
        }
        dst[x * channels + c] = resize_to_uint8(accumulator);
      }
    }
  }
}

// [rows, width, C] -> [rows, out_width, C].
void resize_rows(const uint8_t* input, uint8_t* output, int64_t rows, int64_t width, int64_t out_width,
                 int64_t channels) {
  const TapTable table = make_tap_table(width, out_width);
  const TapView taps = view_of(table);
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, out_width * channels));
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    resize_row_range(input, output, begin, end, width, out_width, channels, taps);
  });
}

// Output rows [begin, end) (flattened batch * out_height) of resize_columns; accumulator: [row_length].
void resize_column_range(const uint8_t* input, uint8_t* output, int64_t begin, int64_t end, int64_t height,
                         int64_t out_height, int64_t row_length, const TapView taps, int32_t* accumulator) {
  for (int64_t index = begin; index < end; ++index) {
    const int64_t b = index / out_height;
    const int64_t y = index % out_height;
    const uint8_t* image = input + b * height * row_length;
    const int32_t* weights = taps.weights + y * taps.max_taps;
    const int64_t count = taps.count[y];
    const int64_t first = taps.first[y];
    std::fill(accumulator, accumulator + row_length, kResizeRounding);
    for (int64_t t = 0; t < count; ++t) {
      const uint8_t* src = image + (first + t) * row_length;
      const int32_t weight = weights[t];
      for (int64_t e = 0; e < row_length; ++e) {
        accumulator[e] += static_cast<int32_t>(src[e]) * weight;
      }
    }
    uint8_t* dst = output + index * row_length;
    for (int64_t e = 0; e < row_length; ++e) {
      dst[e] = resize_to_uint8(accumulator[e]);
    }
  }
}

// [batch, height, row_length] -> [batch, out_height, row_length], each output row a weighted sum of input rows.
void resize_columns(const uint8_t* input, uint8_t* output, int64_t batch, int64_t height, int64_t out_height,
                    int64_t row_length) {
  const TapTable table = make_tap_table(height, out_height);
  const TapView taps = view_of(table);
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, row_length));
  at::parallel_for(0, batch * out_height, grain, [&](int64_t begin, int64_t end) {
    std::vector<int32_t> accumulator(row_length);
    resize_column_range(input, output, begin, end, height, out_height, row_length, taps, accumulator.data());
  });
}

at::Tensor resize_image_cpu(const at::Tensor& image, int64_t out_h, int64_t out_w) {
  resize_image::check_arguments(image, out_h, out_w, kOp, &check_cpu);
  return resize_image::run_passes(
      image, out_h, out_w,
      [](const at::Tensor& input, at::Tensor& output, int64_t rows, int64_t width, int64_t out_width,
         int64_t channels) {
        resize_rows(input.data_ptr<uint8_t>(), output.data_ptr<uint8_t>(), rows, width, out_width, channels);
      },
      [](const at::Tensor& input, at::Tensor& output, int64_t batch, int64_t height, int64_t out_height,
         int64_t row_length) {
        resize_columns(input.data_ptr<uint8_t>(), output.data_ptr<uint8_t>(), batch, height, out_height, row_length);
      });
}

}  // namespace

TORCH_LIBRARY_IMPL(pysalient, CPU, m) { m.impl("resize_image", &resize_image_cpu); }

}  // namespace pysalient
