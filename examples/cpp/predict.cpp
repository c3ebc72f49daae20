// predict MODEL IMAGE OUT_IMAGE [--conf X]
//
// Runs an exported pysalient model (.ts or .pt2) on one image, writes the image with the instance masks
// blended in and their boxes drawn, and prints the detections as JSON on stdout:
//   {"detections": [{"box": [x1, y1, x2, y2], "score": s, "label": l, "area": pixels}, ...]}
// --conf X keeps the instances scoring at least X, in [0, 1] (default: the threshold the model was exported
// with). Errors go to stderr with exit status 1 (2 for a wrong command line).
#include <pysalient/predictor.h>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace {

// Nine significant digits print every float32 exactly, so the JSON round-trips to the same values.
std::string json_number(double value) {
  if (!std::isfinite(value)) {
    return "null";
  }
  char text[32];
  std::snprintf(text, sizeof(text), "%.9g", value);
  return text;
}

std::string detections_json(const pysalient::Detections& detections) {
  std::ostringstream out;
  out << "{\"detections\": [";
  for (size_t i = 0; i < detections.items.size(); ++i) {
    const pysalient::Detection& d = detections.items[i];
    out << (i ? ", " : "") << "{\"box\": [" << json_number(d.box[0]) << ", " << json_number(d.box[1]) << ", "
        << json_number(d.box[2]) << ", " << json_number(d.box[3]) << "], \"score\": " << json_number(d.score)
        << ", \"label\": " << d.label << ", \"area\": " << d.area << "}";
  }
  out << "]}";
  return out.str();
}

cv::Scalar instance_color(size_t index) {
  static const cv::Scalar palette[] = {{56, 56, 255},  {151, 157, 255}, {31, 112, 255}, {29, 178, 255},
                                       {49, 210, 207}, {10, 249, 72},   {23, 204, 146}, {134, 219, 61},
                                       {211, 188, 0},  {255, 115, 100}, {255, 56, 132}, {199, 55, 255}};
  return palette[index % (sizeof(palette) / sizeof(palette[0]))];
}

// Masks blended at 50% in their instance's colour, then boxes and "name score" captions on top.
cv::Mat draw_overlay(const cv::Mat& image, const pysalient::Detections& detections,
                     const std::vector<std::string>& class_names) {
  cv::Mat painted = image.clone();
  for (size_t i = 0; i < detections.items.size(); ++i) {
    const cv::Mat mask(image.rows, image.cols, CV_8UC1, detections.masks[static_cast<int64_t>(i)].data_ptr());
    painted.setTo(instance_color(i), mask);
  }
  cv::Mat overlay;
  cv::addWeighted(image, 0.5, painted, 0.5, 0.0, overlay);
  for (size_t i = 0; i < detections.items.size(); ++i) {
    const pysalient::Detection& d = detections.items[i];
    const cv::Point top_left(static_cast<int>(std::floor(d.box[0])), static_cast<int>(std::floor(d.box[1])));
    const cv::Point bottom_right(static_cast<int>(std::ceil(d.box[2])) - 1, static_cast<int>(std::ceil(d.box[3])) - 1);
    cv::rectangle(overlay, top_left, bottom_right, instance_color(i), 2);
    const bool named = d.label >= 0 && static_cast<size_t>(d.label) < class_names.size();
    char caption[160];
    std::snprintf(caption, sizeof(caption), "%s %.2f",
                  named ? class_names[static_cast<size_t>(d.label)].c_str() : std::to_string(d.label).c_str(),
                  d.score);
    cv::putText(overlay, caption, top_left + cv::Point(2, 14), cv::FONT_HERSHEY_SIMPLEX, 0.45, instance_color(i), 1,
                cv::LINE_AA);
  }
  return overlay;
}

// The value of --conf: a whole decimal number in [0, 1] (strtod alone would take "0.5x" as 0.5, and NaN).
std::optional<double> parse_conf(const std::string& text) {
  if (text.empty()) {
    return std::nullopt;
  }
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || !(value >= 0.0 && value <= 1.0)) {
    return std::nullopt;
  }
  return value;
}

int usage(const char* program, const std::string& problem) {
  if (!problem.empty()) {
    std::cerr << "predict: error: " << problem << "\n";
  }
  std::cerr << "usage: " << program << " MODEL IMAGE OUT_IMAGE [--conf X]\n"
            << "  MODEL      a model exported by pysalient (.ts TorchScript or .pt2 AOTInductor)\n"
            << "  IMAGE      the image to segment (any format OpenCV reads)\n"
            << "  OUT_IMAGE  where to write the image with masks and boxes drawn\n"
            << "  --conf X   minimum score of a returned instance, in [0, 1] (default: the model's)\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> positional;
  std::optional<double> conf;
  for (int i = 1; i < argc; ++i) {
    const std::string argument = argv[i];
    if (argument == "--conf" || argument.rfind("--conf=", 0) == 0) {
      if (argument == "--conf" && i + 1 >= argc) {
        return usage(argv[0], "--conf needs a value");
      }
      const std::string value = argument == "--conf" ? argv[++i] : argument.substr(7);
      conf = parse_conf(value);
      if (!conf) {
        return usage(argv[0], "--conf must be a number in [0, 1], got '" + value + "'");
      }
    } else if (argument.size() > 1 && argument[0] == '-' && argument[1] == '-') {
      return usage(argv[0], "unknown option " + argument);
    } else {
      positional.push_back(argument);
    }
  }
  if (positional.size() != 3) {
    return usage(argv[0], "");
  }
  const std::string model_path = positional[0], image_path = positional[1], out_path = positional[2];
  try {
    pysalient::Predictor predictor(model_path);
    // IMREAD_COLOR gives 8-bit BGR with 3 channels whatever the file holds (grey, alpha, 16-bit).
    const cv::Mat image = cv::imread(image_path, cv::IMREAD_COLOR);
    if (image.empty()) {
      throw std::runtime_error("cannot read the image " + image_path + " (missing file or unknown format)");
    }
    const cv::Mat packed = image.isContinuous() ? image : image.clone();
    const pysalient::Detections detections = predictor.predict(packed.data, packed.rows, packed.cols, conf);
    const cv::Mat overlay = draw_overlay(packed, detections, predictor.metadata().class_names);
    if (!cv::imwrite(out_path, overlay)) {
      throw std::runtime_error("cannot write the image " + out_path + " (unknown extension or unwritable folder)");
    }
    std::cout << detections_json(detections) << std::endl;
  } catch (const std::exception& error) {
    std::cerr << "predict: error: " << error.what() << "\n";
    return 1;
  }
  return 0;
}
