// runtime_checks MODEL [CONF...]: loads MODEL with pysalient::Predictor and prints one JSON object describing
//   "metadata":   the parsed metadata fields (conf and format_version included), default_conf(), the format and
//                 the device;
//   "errors":     for each kind of bad input (image or conf), the message of the exception predict threw ("" if
//                 none);
//   "consistent": whether the pointer and tensor overloads, a non-contiguous tensor, an explicit
//                 conf = default_conf() and the per-detection structs all agree on a deterministic test image;
//   "by_conf":    for each CONF, the detections of that image at that threshold (boxes, scores, labels, areas)
//                 and whether both overloads agree on them.
// The Python test asserts on that object; the test image is (arange(45 * 70 * 3) * 37) % 251 as uint8 [45, 70, 3].
#include <pysalient/predictor.h>

#include <ATen/ATen.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <vector>

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

// Nine significant digits print every float32 exactly, seventeen every double.
std::string number(double value, int digits = 9) {
  char text[40];
  std::snprintf(text, sizeof(text), "%.*g", digits, value);
  return text;
}

std::string detections_json(const pysalient::Detections& found) {
  const at::Tensor areas = found.masks.ne(0).flatten(1).sum(1);
  std::ostringstream boxes, scores, labels, area_list;
  for (size_t i = 0; i < found.size(); ++i) {
    const pysalient::Detection& d = found.items[i];
    const char* separator = i ? ", " : "";
    boxes << separator << "[" << number(d.box[0]) << ", " << number(d.box[1]) << ", " << number(d.box[2]) << ", "
          << number(d.box[3]) << "]";
    scores << separator << number(d.score);
    labels << separator << d.label;
    area_list << separator << areas[static_cast<int64_t>(i)].item<int64_t>();
  }
  return "\"boxes\": [" + boxes.str() + "], \"scores\": [" + scores.str() + "], \"labels\": [" + labels.str() +
         "], \"areas\": [" + area_list.str() + "]";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: " << argv[0] << " MODEL [CONF...]\n";
    return 2;
  }
  std::vector<double> confs;
  for (int i = 2; i < argc; ++i) {
    char* end = nullptr;
    confs.push_back(std::strtod(argv[i], &end));
    if (*end != '\0') {
      std::cerr << "runtime_checks: error: CONF must be a number, got " << argv[i] << "\n";
      return 2;
    }
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
        {"conf_above_one", error_of([&] { predictor.predict(image, 1.5); })},
        {"conf_negative", error_of([&] { predictor.predict(pixels, height, width, -0.1); })},
        {"conf_nan", error_of([&] { predictor.predict(image, std::numeric_limits<double>::quiet_NaN()); })},
        {"conf_nan_pointer",
         error_of([&] { predictor.predict(pixels, height, width, std::numeric_limits<double>::quiet_NaN()); })},
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
    const pysalient::Detections at_default = predictor.predict(image, predictor.default_conf());
    const bool consistent = !strided.is_contiguous() && same(from_pointer, from_tensor) &&
                            same(from_pointer, from_strided) && same(from_pointer, at_default) &&
                            items_match_tensors(from_pointer);
    std::ostringstream by_conf;
    for (size_t i = 0; i < confs.size(); ++i) {
      const pysalient::Detections found = predictor.predict(image, confs[i]);
      const bool agree = same(found, predictor.predict(pixels, height, width, confs[i])) && items_match_tensors(found);
      by_conf << (i ? ", " : "") << "{\"conf\": " << number(confs[i], 17) << ", " << detections_json(found)
              << ", \"consistent\": " << (agree ? "true" : "false") << "}";
    }

    std::ostringstream out;
    out << "{\"metadata\": {\"format\": " << quoted(pysalient::format_name(predictor.format()))
        << ", \"family\": " << quoted(metadata.family) << ", \"name\": " << quoted(metadata.name)
        << ", \"version\": " << quoted(metadata.version) << ", \"runtime_version\": " << quoted(pysalient::version())
        << ", \"device\": " << quoted(predictor.device().str()) << ", \"json\": " << quoted(metadata.json)
        << ", \"min_input_size\": " << metadata.min_input_size << ", \"max_input_size\": " << metadata.max_input_size
        << ", \"format_version\": " << metadata.format_version << ", \"conf\": " << number(metadata.conf, 17)
        << ", \"default_conf\": " << number(predictor.default_conf(), 17) << ", \"class_names\": [";
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
        << ", \"by_conf\": [" << by_conf.str() << "]}";
    std::cout << out.str() << std::endl;
  } catch (const std::exception& error) {
    std::cerr << "runtime_checks: error: " << error.what() << "\n";
    return 1;
  }
  return 0;
}
