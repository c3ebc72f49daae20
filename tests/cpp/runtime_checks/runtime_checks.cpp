// runtime_checks MODEL: loads MODEL with pysalient::Predictor and prints one JSON object describing
//   "metadata":   the parsed metadata fields, the format and the device;
//   "errors":     for each kind of bad input, the message of the exception predict threw ("" if none);
//   "consistent": whether the pointer and tensor overloads, a non-contiguous tensor and the per-detection
//                 structs all agree on a deterministic test image.
// The Python test asserts on that object.
#include <pysalient/predictor.h>

#include <ATen/ATen.h>

#include <functional>
#include <iostream>
#include <map>
#include <sstream>
#include <string>

namespace {

std::string quoted(const std::string& text) {
  std::ostringstream out;
  out << '"';
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out << '\\' << c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out << "\\u00" << "0123456789abcdef"[(c >> 4) & 0xF] << "0123456789abcdef"[c & 0xF];
    } else {
      out << c;
    }
  }
  out << '"';
  return out.str();
}

std::string error_of(const std::function<void()>& call) {
  try {
    call();
  } catch (const std::exception& error) {
    return error.what();
  }
  return "";
}

bool same(const pysalient::Detections& a, const pysalient::Detections& b) {
  return a.size() == b.size() && a.boxes.equal(b.boxes) && a.scores.equal(b.scores) && a.labels.equal(b.labels) &&
         a.masks.equal(b.masks);
}

// The structs must repeat the tensors: box, score, label, and area = number of mask pixels.
bool items_match_tensors(const pysalient::Detections& found) {
  const at::Tensor areas = found.masks.ne(0).flatten(1).sum(1);
  for (size_t i = 0; i < found.size(); ++i) {
    const auto k = static_cast<int64_t>(i);
    const pysalient::Detection& d = found.items[i];
    for (int64_t j = 0; j < 4; ++j) {
      if (d.box[j] != found.boxes[k][j].item<float>()) {
        return false;
      }
    }
    if (d.score != found.scores[k].item<float>() || d.label != found.labels[k].item<int64_t>() ||
        d.area != areas[k].item<int64_t>()) {
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: " << argv[0] << " MODEL\n";
    return 2;
  }
  try {
    pysalient::Predictor predictor(argv[1]);
    const int64_t height = 45, width = 70;
    const at::Tensor image = at::arange(height * width * 3, at::kLong).mul(37).remainder(251).to(at::kByte)
                                 .reshape({height, width, 3});
    const uint8_t* pixels = image.data_ptr<uint8_t>();
    std::map<std::string, std::string> errors{
        {"four_channels", error_of([&] { predictor.predict(at::zeros({height, width, 4}, at::kByte)); })},
        {"two_dims", error_of([&] { predictor.predict(at::zeros({height, width}, at::kByte)); })},
        {"float_image", error_of([&] { predictor.predict(at::zeros({height, width, 3}, at::kFloat)); })},
        {"empty_height", error_of([&] { predictor.predict(at::zeros({0, width, 3}, at::kByte)); })},
        {"undefined", error_of([&] { predictor.predict(at::Tensor()); })},
        {"null_buffer", error_of([&] { predictor.predict(nullptr, height, width); })},
        {"zero_width", error_of([&] { predictor.predict(pixels, height, 0); })},
    };
    const pysalient::ModelMetadata& metadata = predictor.metadata();
    if (metadata.min_input_size > 1) {
      const int64_t side = metadata.min_input_size - 1;
      errors["below_input_size_range"] =
          error_of([&] { predictor.predict(at::zeros({side, width, 3}, at::kByte)); });
    }
    const pysalient::Detections from_pointer = predictor.predict(pixels, height, width);
    const pysalient::Detections from_tensor = predictor.predict(image);
    const at::Tensor strided = image.permute({1, 0, 2}).contiguous().permute({1, 0, 2});
    const pysalient::Detections from_strided = predictor.predict(strided);
    const bool consistent = !strided.is_contiguous() && same(from_pointer, from_tensor) &&
                            same(from_pointer, from_strided) && items_match_tensors(from_pointer);

    std::ostringstream out;
    out << "{\"metadata\": {\"format\": " << quoted(pysalient::format_name(predictor.format()))
        << ", \"family\": " << quoted(metadata.family) << ", \"name\": " << quoted(metadata.name)
        << ", \"version\": " << quoted(metadata.version) << ", \"runtime_version\": " << quoted(pysalient::version())
        << ", \"device\": " << quoted(predictor.device().str()) << ", \"json\": " << quoted(metadata.json)
        << ", \"min_input_size\": " << metadata.min_input_size << ", \"max_input_size\": " << metadata.max_input_size
        << ", \"class_names\": [";
    for (size_t i = 0; i < metadata.class_names.size(); ++i) {
      out << (i ? ", " : "") << quoted(metadata.class_names[i]);
    }
    out << "]}, \"errors\": {";
    bool first = true;
    for (const auto& [name, message] : errors) {
      out << (first ? "" : ", ") << quoted(name) << ": " << quoted(message);
      first = false;
    }
    out << "}, \"detections\": " << from_pointer.size() << ", \"consistent\": " << (consistent ? "true" : "false")
        << "}";
    std::cout << out.str() << std::endl;
  } catch (const std::exception& error) {
    std::cerr << "runtime_checks: error: " << error.what() << "\n";
    return 1;
  }
  return 0;
}
