// pysalient::Predictor: runs a model exported by `SalientModel.export` (DESIGN.md §5) from C++, without Python.
//
//   pysalient::Predictor predictor("model.pt2");            // or "model.ts"
//   cv::Mat image = cv::imread("image.jpg");               // BGR uint8, what the export contract takes
//   pysalient::Detections found = predictor.predict(image.data, image.rows, image.cols);
//   for (const pysalient::Detection& d : found.items) { d.box, d.score, d.label, d.area ... }
//   pysalient::Detections confident = predictor.predict(image.data, image.rows, image.cols, 0.5);  // score >= 0.5
//
// Both formats hold the whole pipeline (resize, normalise, network, post-processing): the Predictor only
// checks the image, runs the graph and checks that the outputs follow the contract. The operator library
// libpysalient_ops.so must be loaded for either format to run; linking PySalient::runtime takes care of it.
#pragma once

#include <ATen/Tensor.h>
#include <c10/core/Device.h>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "metadata.h"

namespace pysalient {

// One detected instance; `box` is (x1, y1, x2, y2) in input pixels, `area` the number of mask pixels.
struct Detection {
  std::array<float, 4> box;
  float score;
  int64_t label;
  int64_t area;
};

// Everything a model returns for one image of height H and width W, on the CPU:
//   boxes  float32 [K, 4]   scores float32 [K]   labels int64 [K]   masks uint8 [K, H, W] (0 or 1)
// and the same K instances as plain structs, in the model's order (decreasing score).
struct Detections {
  at::Tensor boxes;
  at::Tensor scores;
  at::Tensor labels;
  at::Tensor masks;
  std::vector<Detection> items;

  size_t size() const { return items.size(); }
};

enum class ModelFormat { TorchScript, AOTInductor };

// One loaded model. predict is not thread-safe: use one Predictor per thread.
class Predictor {
 public:
  // Loads a TorchScript file (.ts) or an AOTInductor package (.pt2); the format is read from the file's
  // contents, not its name. `device` is where TorchScript models run (where they were exported when omitted);
  // an AOTInductor package runs on the device type it was compiled for, and another `device` type is an error.
  // Throws std::runtime_error for a missing or unreadable file, a file of neither format, or a model without
  // valid pysalient metadata; std::invalid_argument for a `device` an AOTInductor package cannot run on.
  explicit Predictor(const std::string& model_path, std::optional<c10::Device> device = std::nullopt);
  ~Predictor();
  Predictor(Predictor&&) noexcept;
  Predictor& operator=(Predictor&&) noexcept;
  Predictor(const Predictor&) = delete;
  Predictor& operator=(const Predictor&) = delete;

  // Runs the model on a row-major, tightly packed BGR image of `height` x `width` pixels (3 bytes per pixel,
  // e.g. a continuous cv::Mat of type CV_8UC3). The buffer is only read, and only during the call.
  // `conf` is the minimum final score of a returned instance, in [0, 1]; default_conf() when omitted. It is
  // the same threshold as Python's `predict(..., conf=...)`: version-2 exports apply it inside the graph (their
  // second input, a float32 0-d tensor on the model's device); version-1 exports take the image only and their
  // outputs are filtered here (score >= conf).
  // Throws std::invalid_argument for a conf outside [0, 1] or NaN, a null buffer or a non-positive size.
  Detections predict(const uint8_t* bgr, int64_t height, int64_t width, std::optional<double> conf = std::nullopt);

  // Same for a uint8 tensor [H, W, 3] in BGR order, on any device. Throws std::invalid_argument for a conf
  // outside [0, 1] or NaN, when the tensor has another shape, dtype or an empty side, or (AOTInductor) sides
  // outside the package's "input_size_range"; std::runtime_error when the model fails or its outputs break the
  // export contract.
  Detections predict(const at::Tensor& bgr, std::optional<double> conf = std::nullopt);

  // The threshold predict applies without a `conf`: metadata().conf (0 for version-1 exports, whose graphs
  // apply the threshold they were exported with).
  double default_conf() const;

  ModelFormat format() const;
  const ModelMetadata& metadata() const;
  c10::Device device() const;
  const std::string& path() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// "torchscript" or "aoti".
std::string format_name(ModelFormat format);

// The version of pysalient this runtime was built from (same as pysalient.__version__).
std::string version();

}  // namespace pysalient
