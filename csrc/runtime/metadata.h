// The metadata an exported pysalient model carries ("pysalient.json", DESIGN.md §5): the raw JSON text plus
// the few fields a C++ program needs. Parsing is deliberately minimal (a small hand-written JSON reader, no
// dependency): top-level scalars and flat arrays are kept; nested objects are validated and skipped, and remain
// available through `json` for a JSON library of the user's choice.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace pysalient {

// The newest metadata layout this runtime understands (pysalient.export.contract's format_version):
//   2: the graph takes (image, conf) and applies conf, a float32 0-d tensor, to the final scores; the default
//      threshold is the top-level "conf".
//   1: the graph takes the image only, its threshold baked in (older exports; still run).
constexpr int kMetadataFormatVersion = 2;

struct ModelMetadata {
  std::string json;                      // the document exactly as stored in the model file
  int format_version = 1;                // "format_version" (1 when absent: the first exports had none)
  std::string format;                    // "torchscript" or "aoti"
  std::string family;                    // "sparseinst", ...
  std::string name;                      // the registry entry, e.g. "sparseinst_r50_giam"
  std::string version;                   // "pysalient_version": the pysalient that exported the model
  std::vector<std::string> class_names;  // label index -> class name
  // The default minimum score of a returned instance, what Predictor::predict applies without a `conf`: the
  // top-level "conf" of version-2 metadata. Version-1 files only hold it inside the nested "thresholds" object,
  // which this parser skips, and their graphs already applied it: 0 for them (every instance the graph returns).
  double conf = 0.0;
  // Smallest and largest image height/width an AOTInductor package accepts ("input_size_range"); 0 = unbounded.
  int64_t min_input_size = 0;
  int64_t max_input_size = 0;

  // Every top-level field whose value is a string, a number / boolean (booleans as 0 and 1), an array of
  // strings or an array of numbers. Objects and mixed arrays are only in `json`.
  std::map<std::string, std::string> strings;
  std::map<std::string, double> numbers;
  std::map<std::string, std::vector<std::string>> string_arrays;
  std::map<std::string, std::vector<double>> number_arrays;

  // The value of a top-level string / number field, or nullopt when absent or of another type.
  std::optional<std::string> string_field(const std::string& key) const;
  std::optional<double> number_field(const std::string& key) const;
};

// Parses `json`, the "pysalient.json" of the model file `source`. Throws std::runtime_error naming `source`
// when the text is not valid JSON or not an object, when "family" or "class_names" is missing or mistyped, when
// its "format_version" is not a whole number >= 1 or is newer than kMetadataFormatVersion, or when version-2
// metadata lacks a top-level "conf" in [0, 1].
ModelMetadata parse_metadata(const std::string& json, const std::string& source);

}  // namespace pysalient
