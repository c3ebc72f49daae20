// Loading and running exported pysalient models (TorchScript and AOTInductor) from C++.
#include "predictor.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/import.h>

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <stdexcept>
#include <unordered_map>
#include <utility>

namespace pysalient {
namespace {

// The name both exporters give the metadata: the TorchScript extra file and the AOTInductor metadata key.
constexpr const char* kMetadataName = "pysalient.json";
constexpr const char* kAotiPrefix = "data/aotinductor/";

std::string error_text(const std::exception& error) {
  // c10::Error::what() appends a C++ stack trace; the first line is the message a user needs.
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&error)) {
    return c10_error->what_without_backtrace();
  }
  return error.what();
}

std::string shape_text(const at::Tensor& tensor) {
  std::ostringstream out;
  out << tensor.sizes() << " " << tensor.scalar_type();
  return out.str();
}

struct ArchiveInfo {
  ModelFormat format;
  std::string aoti_model_name;  // the model folder inside an AOTInductor package
};

// Both formats are PyTorch zip archives; their records tell them apart. TorchScript has data.pkl plus
// compiled code/, an AOTInductor package has archive_format plus data/aotinductor/<model>/; a torch.save
// checkpoint or a torch.export program (.pt2 without compiled code) has neither.
ArchiveInfo inspect_archive(const std::string& path) {
  std::error_code error;
  if (!std::filesystem::exists(path, error)) {
    throw std::runtime_error("pysalient: model file not found: " + path);
  }
  if (!std::filesystem::is_regular_file(path, error)) {
    throw std::runtime_error("pysalient: model path is not a file: " + path);
  }
  std::vector<std::string> records;
  try {
    records = caffe2::serialize::PyTorchStreamReader(path).getAllRecords();
  } catch (const std::exception& failure) {
    throw std::runtime_error("pysalient: " + path +
                             " is neither a TorchScript file (.ts) nor an AOTInductor package (.pt2): it is not a "
                             "PyTorch zip archive (" + error_text(failure) + ")");
  }
  auto has = [&records](const std::string& name) {
    return std::find(records.begin(), records.end(), name) != records.end();
  };
  auto has_prefix = [&records](const std::string& prefix) {
    return std::any_of(records.begin(), records.end(),
                       [&prefix](const std::string& record) { return record.rfind(prefix, 0) == 0; });
  };
  if (has("archive_format") && has_prefix(kAotiPrefix)) {
    std::vector<std::string> names;
    for (const std::string& record : records) {
      if (record.rfind(kAotiPrefix, 0) != 0) {
        continue;
      }
      const std::string rest = record.substr(std::string(kAotiPrefix).size());
      const std::string name = rest.substr(0, rest.find('/'));
      if (std::find(names.begin(), names.end(), name) == names.end()) {
        names.push_back(name);
      }
    }
    // The exporter packages one model under the default name "model"; accept any single name.
    if (std::find(names.begin(), names.end(), "model") != names.end()) {
      return {ModelFormat::AOTInductor, "model"};
    }
    if (names.size() != 1) {
      throw std::runtime_error("pysalient: " + path + " holds " + std::to_string(names.size()) +
                               " AOTInductor models and none is named 'model'; expected one exported model");
    }
    return {ModelFormat::AOTInductor, names.front()};
  }
  if (has("archive_format")) {
    throw std::runtime_error("pysalient: " + path +
                             " is a torch.export program without AOTInductor-compiled code; export it with "
                             "SalientModel.export(\"aoti\", path)");
  }
  if (has("data.pkl") && has_prefix("code/")) {
    return {ModelFormat::TorchScript, ""};
  }
  throw std::runtime_error("pysalient: " + path +
                           " is neither a TorchScript file (.ts) nor an AOTInductor package (.pt2) (a PyTorch "
                           "archive without compiled code, e.g. a torch.save checkpoint)");
}

// `conf` (or `fallback` when absent), which must lie in [0, 1]; NaN fails both comparisons.
double checked_conf(std::optional<double> conf, double fallback) {
  const double value = conf.value_or(fallback);
  if (!(value >= 0.0 && value <= 1.0)) {
    std::ostringstream text;
    text << value;
    throw std::invalid_argument("pysalient: conf must be a number in [0, 1] (the minimum score of a returned "
                                "instance), got " + text.str());
  }
  return value;
}

std::runtime_error missing_metadata(const std::string& path) {
  return std::runtime_error("pysalient: " + path + " has no pysalient metadata (" + kMetadataName +
                            "); only models written by SalientModel.export can be run");
}

}  // namespace

struct Predictor::Impl {
  std::string path;
  ModelFormat format;
  c10::Device device{c10::kCPU};
  ModelMetadata metadata;
  std::optional<torch::jit::Module> module;
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> package;

  void load_torchscript(std::optional<c10::Device> requested) {
    torch::jit::ExtraFilesMap extra_files{{kMetadataName, ""}};
    try {
      // Without a requested device the tensors stay where they were saved, as torch.jit.load does.
      module = torch::jit::load(path, requested, extra_files);
    } catch (const std::exception& failure) {
      throw std::runtime_error("pysalient: loading the TorchScript model " + path + " failed: " +
                               error_text(failure));
    }
    module->eval();
    if (extra_files[kMetadataName].empty()) {
      throw missing_metadata(path);
    }
    metadata = parse_metadata(extra_files[kMetadataName], path);
    device = requested.value_or(c10::Device(c10::kCPU));
    if (!requested) {
      for (const at::Tensor& parameter : module->parameters()) {
        device = parameter.device();
        break;
      }
    }
  }

  void load_aoti(const std::string& model_name, std::optional<c10::Device> requested) {
    std::unordered_map<std::string, std::string> package_metadata;
    try {
      package_metadata = torch::inductor::AOTIModelPackageLoader::load_metadata_from_package(path, model_name);
    } catch (const std::exception& failure) {
      throw std::runtime_error("pysalient: reading the AOTInductor package " + path + " failed: " +
                               error_text(failure));
    }
    const auto json = package_metadata.find(kMetadataName);
    if (json == package_metadata.end() || json->second.empty()) {
      throw missing_metadata(path);
    }
    metadata = parse_metadata(json->second, path);
    const auto compiled_for = package_metadata.find("AOTI_DEVICE_KEY");
    const c10::Device package_device(compiled_for == package_metadata.end() ? "cpu" : compiled_for->second);
    if (requested && requested->type() != package_device.type()) {
      throw std::invalid_argument("pysalient: " + path + " was compiled for " + package_device.str() +
                                  " and cannot run on " + requested->str() + "; export it again for that device");
    }
    const c10::DeviceIndex index = requested && requested->has_index() ? requested->index() : -1;
    try {
      package = std::make_unique<torch::inductor::AOTIModelPackageLoader>(path, model_name, false, 1, index);
    } catch (const std::exception& failure) {
      throw std::runtime_error("pysalient: loading the AOTInductor package " + path + " failed: " +
                               error_text(failure));
    }
    device = requested.value_or(package_device);
  }

  // Version-2 graphs take (image, conf); version-1 graphs the image only (predict filters their outputs).
  std::vector<at::Tensor> run(const at::Tensor& image, double conf) {
    std::vector<at::Tensor> inputs{image};
    if (metadata.format_version >= 2) {
      inputs.push_back(at::scalar_tensor(conf, at::TensorOptions().dtype(at::kFloat).device(device)));
    }
    c10::IValue output;
    try {
      if (format == ModelFormat::AOTInductor) {
        return package->run(inputs);
      }
      output = module->forward(std::vector<c10::IValue>(inputs.begin(), inputs.end()));
    } catch (const std::exception& failure) {
      throw std::runtime_error("pysalient: running " + path + " failed: " + error_text(failure));
    }
    if (!output.isTuple()) {
      throw std::runtime_error("pysalient: " + path + " returned " + output.tagKind() +
                               ", expected the tuple (boxes, scores, labels, masks)");
    }
    std::vector<at::Tensor> tensors;
    for (const c10::IValue& element : output.toTupleRef().elements()) {
      if (!element.isTensor()) {
        throw std::runtime_error("pysalient: " + path + " returned a tuple holding " + element.tagKind() +
                                 ", expected tensors (boxes, scores, labels, masks)");
      }
      tensors.push_back(element.toTensor());
    }
    return tensors;
  }
};

namespace {

// Checks the outputs against the export contract (DESIGN.md §5), keeps those with a score >= `conf` when
// `filter_scores`, and brings them to the CPU in the documented dtypes (an fp16 export may return half boxes and
// scores).
Detections collect(std::vector<at::Tensor> outputs, int64_t height, int64_t width, const std::string& path,
                   bool filter_scores, double conf) {
  auto contract_error = [&path](const std::string& what) {
    return std::runtime_error("pysalient: the output of " + path + " does not follow the export contract: " + what);
  };
  if (outputs.size() != 4) {
    throw contract_error(std::to_string(outputs.size()) + " outputs, expected 4 (boxes, scores, labels, masks)");
  }
  const at::Tensor& boxes = outputs[0];
  const int64_t count = boxes.dim() == 2 ? boxes.size(0) : -1;
  if (count < 0 || boxes.size(1) != 4) {
    throw contract_error("boxes is " + shape_text(boxes) + ", expected [K, 4]");
  }
  const std::vector<std::pair<const char*, std::vector<int64_t>>> expected{
      {"scores", {count}}, {"labels", {count}}, {"masks", {count, height, width}}};
  for (size_t i = 0; i < expected.size(); ++i) {
    if (outputs[i + 1].sizes() != c10::IntArrayRef(expected[i].second)) {
      std::ostringstream want;
      want << c10::IntArrayRef(expected[i].second);
      throw contract_error(std::string(expected[i].first) + " is " + shape_text(outputs[i + 1]) + ", expected " +
                           want.str() + " for K = " + std::to_string(count) + " and an image of " +
                           std::to_string(height) + "x" + std::to_string(width));
    }
  }
  if (filter_scores) {
    // A version-1 graph applied its exported threshold only: keep the instances whose score reaches conf,
    // compared in the scores' own dtype as Python's ExportedModel does.
    const at::Tensor keep = outputs[1].ge(conf).nonzero().flatten();
    for (at::Tensor& output : outputs) {
      output = output.index_select(0, keep.to(output.device()));
    }
  }
  const int64_t kept = outputs[0].size(0);
  Detections detections;
  detections.boxes = outputs[0].to(c10::kCPU, at::kFloat).contiguous();
  detections.scores = outputs[1].to(c10::kCPU, at::kFloat).contiguous();
  detections.labels = outputs[2].to(c10::kCPU, at::kLong).contiguous();
  detections.masks = outputs[3].to(c10::kCPU, at::kByte).contiguous();
  const at::Tensor areas = detections.masks.ne(0).flatten(1).sum(1).contiguous();
  const float* box = detections.boxes.data_ptr<float>();
  const float* score = detections.scores.data_ptr<float>();
  const int64_t* label = detections.labels.data_ptr<int64_t>();
  const int64_t* area = areas.data_ptr<int64_t>();
  detections.items.reserve(static_cast<size_t>(kept));
  for (int64_t k = 0; k < kept; ++k) {
    detections.items.push_back({{box[4 * k], box[4 * k + 1], box[4 * k + 2], box[4 * k + 3]}, score[k], label[k],
                                area[k]});
  }
  return detections;
}

}  // namespace

Predictor::Predictor(const std::string& model_path, std::optional<c10::Device> device)
    : impl_(std::make_unique<Impl>()) {
  impl_->path = model_path;
  const ArchiveInfo archive = inspect_archive(model_path);
  impl_->format = archive.format;
  if (archive.format == ModelFormat::TorchScript) {
    impl_->load_torchscript(device);
  } else {
    impl_->load_aoti(archive.aoti_model_name, device);
  }
  const std::string& declared = impl_->metadata.format;
  if (!declared.empty() && declared != format_name(archive.format)) {
    throw std::runtime_error("pysalient: " + model_path + " is a " + format_name(archive.format) +
                             " file but its metadata says \"" + declared + "\"");
  }
}

Predictor::~Predictor() = default;
Predictor::Predictor(Predictor&&) noexcept = default;
Predictor& Predictor::operator=(Predictor&&) noexcept = default;

Detections Predictor::predict(const uint8_t* bgr, int64_t height, int64_t width, std::optional<double> conf) {
  const double threshold = checked_conf(conf, default_conf());
  if (bgr == nullptr) {
    throw std::invalid_argument("pysalient: predict got a null image buffer");
  }
  if (height <= 0 || width <= 0) {
    throw std::invalid_argument("pysalient: predict got an image of " + std::to_string(height) + "x" +
                                std::to_string(width) + " pixels; both sides must be positive");
  }
  // The graph only reads its input, so the caller's buffer is wrapped, not copied.
  const at::Tensor image =
      at::from_blob(const_cast<uint8_t*>(bgr), {height, width, 3}, at::TensorOptions().dtype(at::kByte));
  return predict(image, threshold);
}

Detections Predictor::predict(const at::Tensor& bgr, std::optional<double> conf) {
  const double threshold = checked_conf(conf, default_conf());
  if (!bgr.defined()) {
    throw std::invalid_argument("pysalient: predict got an undefined tensor");
  }
  if (bgr.dim() != 3 || bgr.size(2) != 3) {
    throw std::invalid_argument("pysalient: predict expects a BGR image tensor [H, W, 3], got " + shape_text(bgr));
  }
  if (bgr.scalar_type() != at::kByte) {
    throw std::invalid_argument("pysalient: predict expects a uint8 image, got " + shape_text(bgr));
  }
  if (bgr.size(0) == 0 || bgr.size(1) == 0) {
    throw std::invalid_argument("pysalient: predict got an empty image " + shape_text(bgr));
  }
  const ModelMetadata& metadata = impl_->metadata;
  if (metadata.max_input_size > 0) {
    // An AOTInductor graph is compiled for this range of symbolic sizes and does not check it at run time.
    for (const int64_t side : {bgr.size(0), bgr.size(1)}) {
      if (side < metadata.min_input_size || side > metadata.max_input_size) {
        throw std::invalid_argument("pysalient: predict got an image of " + std::to_string(bgr.size(0)) + "x" +
                                    std::to_string(bgr.size(1)) + " pixels but " + impl_->path +
                                    " accepts heights and widths in [" + std::to_string(metadata.min_input_size) +
                                    ", " + std::to_string(metadata.max_input_size) + "]");
      }
    }
  }
  const c10::InferenceMode inference;
  const at::Tensor image = bgr.to(impl_->device).contiguous();
  // A version-2 graph applied conf itself; a version-1 graph only the threshold it was exported with.
  const bool filter_scores = metadata.format_version < 2;
  return collect(impl_->run(image, threshold), bgr.size(0), bgr.size(1), impl_->path, filter_scores, threshold);
}

double Predictor::default_conf() const { return impl_->metadata.conf; }

ModelFormat Predictor::format() const { return impl_->format; }

const ModelMetadata& Predictor::metadata() const { return impl_->metadata; }

c10::Device Predictor::device() const { return impl_->device; }

const std::string& Predictor::path() const { return impl_->path; }

std::string format_name(ModelFormat format) {
  return format == ModelFormat::TorchScript ? "torchscript" : "aoti";
}

std::string version() { return PYSALIENT_VERSION; }

}  // namespace pysalient
