// A small recursive-descent JSON reader (RFC 8259) for the metadata of exported models. It keeps top-level
// scalars and flat arrays and only validates everything else: the runtime needs a handful of fields, and
// users who want more read `ModelMetadata::json` with the JSON library of their choice.
#include "metadata.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <utility>

namespace pysalient {
namespace {

class JsonReader {
 public:
  JsonReader(const std::string& text, const std::string& source) : text_(text), source_(source) {}

  ModelMetadata read_document() {
    ModelMetadata metadata;
    metadata.json = text_;
    skip_whitespace();
    expect('{', "the metadata must be a JSON object");
    skip_whitespace();
    if (!consume('}')) {
      do {
        skip_whitespace();
        std::string key = read_string();
        skip_whitespace();
        expect(':', "expected ':' after an object key");
        skip_whitespace();
        read_top_level_value(key, metadata);
        skip_whitespace();
      } while (consume(','));
      expect('}', "expected ',' or '}' in an object");
    }
    skip_whitespace();
    if (position_ != text_.size()) {
      fail("unexpected text after the JSON object");
    }
    return metadata;
  }

 private:
  void read_top_level_value(const std::string& key, ModelMetadata& metadata) {
    const char next = peek();
    if (next == '"') {
      metadata.strings[key] = read_string();
    } else if (next == '-' || (next >= '0' && next <= '9')) {
      metadata.numbers[key] = read_number();
    } else if (next == 't' || next == 'f') {
      metadata.numbers[key] = read_literal() == "true" ? 1.0 : 0.0;
    } else if (next == '[') {
      read_flat_array(key, metadata);
    } else {
      skip_value();
    }
  }

  // Arrays of only strings or only numbers are kept; anything else (nested, mixed) is validated and dropped.
  void read_flat_array(const std::string& key, ModelMetadata& metadata) {
    const size_t start = position_;
    std::vector<std::string> strings;
    std::vector<double> numbers;
    ++position_;
    skip_whitespace();
    if (consume(']')) {
      metadata.string_arrays[key];
      metadata.number_arrays[key];
      return;
    }
    do {
      skip_whitespace();
      const char next = peek();
      if (next == '"' && numbers.empty()) {
        strings.push_back(read_string());
      } else if ((next == '-' || (next >= '0' && next <= '9')) && strings.empty()) {
        numbers.push_back(read_number());
      } else {
        position_ = start;
        skip_value();
        return;
      }
      skip_whitespace();
    } while (consume(','));
    expect(']', "expected ',' or ']' in an array");
    if (numbers.empty()) {
      metadata.string_arrays[key] = std::move(strings);
    } else {
      metadata.number_arrays[key] = std::move(numbers);
    }
  }

  void skip_value() {
    const char next = peek();
    if (next == '"') {
      read_string();
    } else if (next == '{' || next == '[') {
      const char close = next == '{' ? '}' : ']';
      ++position_;
      skip_whitespace();
      if (consume(close)) {
        return;
      }
      do {
        skip_whitespace();
        if (close == '}') {
          read_string();
          skip_whitespace();
          expect(':', "expected ':' after an object key");
          skip_whitespace();
        }
        skip_value();
        skip_whitespace();
      } while (consume(','));
      expect(close, close == '}' ? "expected ',' or '}' in an object" : "expected ',' or ']' in an array");
    } else if (next == '-' || (next >= '0' && next <= '9')) {
      read_number();
    } else {
      read_literal();
    }
  }

  std::string read_literal() {
    for (const char* literal : {"true", "false", "null"}) {
      const std::string word(literal);
      if (text_.compare(position_, word.size(), word) == 0) {
        position_ += word.size();
        return word;
      }
    }
    fail("expected a JSON value");
  }

  double read_number() {
    // Validate the RFC 8259 grammar first: strtod alone would accept "0x1p3", "inf" or leading zeros.
    const size_t start = position_;
    consume('-');
    if (!consume('0')) {
      if (!read_digits()) {
        fail("malformed number");
      }
    }
    if (consume('.') && !read_digits()) {
      fail("malformed number");
    }
    if (consume('e') || consume('E')) {
      if (!consume('+')) {
        consume('-');
      }
      if (!read_digits()) {
        fail("malformed number");
      }
    }
    return std::strtod(text_.substr(start, position_ - start).c_str(), nullptr);
  }

  bool read_digits() {
    const size_t start = position_;
    while (position_ < text_.size() && text_[position_] >= '0' && text_[position_] <= '9') {
      ++position_;
    }
    return position_ > start;
  }

  std::string read_string() {
    expect('"', "expected a string");
    std::string value;
    while (true) {
      if (position_ >= text_.size()) {
        fail("unterminated string");
      }
      const char c = text_[position_++];
      if (c == '"') {
        return value;
      }
      if (static_cast<unsigned char>(c) < 0x20) {
        fail("control character inside a string");
      }
      if (c != '\\') {
        value.push_back(c);
        continue;
      }
      if (position_ >= text_.size()) {
        fail("unterminated escape sequence");
      }
      const char escaped = text_[position_++];
      switch (escaped) {
        case '"': value.push_back('"'); break;
        case '\\': value.push_back('\\'); break;
        case '/': value.push_back('/'); break;
        case 'b': value.push_back('\b'); break;
        case 'f': value.push_back('\f'); break;
        case 'n': value.push_back('\n'); break;
        case 'r': value.push_back('\r'); break;
        case 't': value.push_back('\t'); break;
        case 'u': append_utf8(read_code_point(), value); break;
        default: fail("invalid escape sequence");
      }
    }
  }

  // Python's json.dumps escapes every non-ASCII character (ensure_ascii), so class names such as "café"
  // arrive as \u escapes, characters outside the BMP as surrogate pairs.
  uint32_t read_code_point() {
    uint32_t code = read_hex4();
    if (code >= 0xD800 && code <= 0xDBFF) {
      if (text_.compare(position_, 2, "\\u") != 0) {
        fail("unpaired UTF-16 surrogate");
      }
      position_ += 2;
      const uint32_t low = read_hex4();
      if (low < 0xDC00 || low > 0xDFFF) {
        fail("invalid UTF-16 surrogate pair");
      }
      code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
    } else if (code >= 0xDC00 && code <= 0xDFFF) {
      fail("unpaired UTF-16 surrogate");
    }
    return code;
  }

  uint32_t read_hex4() {
    if (position_ + 4 > text_.size()) {
      fail("truncated \\u escape");
    }
    uint32_t code = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = text_[position_++];
      code <<= 4;
      if (c >= '0' && c <= '9') {
        code |= static_cast<uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        code |= static_cast<uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        code |= static_cast<uint32_t>(c - 'A' + 10);
      } else {
        fail("invalid \\u escape");
      }
    }
    return code;
  }

  static void append_utf8(uint32_t code, std::string& out) {
    if (code < 0x80) {
      out.push_back(static_cast<char>(code));
    } else if (code < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (code >> 6)));
      out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
    } else if (code < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (code >> 12)));
      out.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (code >> 18)));
      out.push_back(static_cast<char>(0x80 | ((code >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
    }
  }

  void skip_whitespace() {
    while (position_ < text_.size() &&
           (text_[position_] == ' ' || text_[position_] == '\t' || text_[position_] == '\n' ||
            text_[position_] == '\r')) {
      ++position_;
    }
  }

  char peek() const { return position_ < text_.size() ? text_[position_] : '\0'; }

  bool consume(char c) {
    if (peek() == c && position_ < text_.size()) {
      ++position_;
      return true;
    }
    return false;
  }

  void expect(char c, const std::string& message) {
    if (!consume(c)) {
      fail(message);
    }
  }

  [[noreturn]] void fail(const std::string& message) const {
    throw std::runtime_error("pysalient: invalid metadata in " + source_ + ": " + message + " at byte " +
                             std::to_string(position_));
  }

  const std::string& text_;
  const std::string& source_;
  size_t position_ = 0;
};

}  // namespace

std::optional<std::string> ModelMetadata::string_field(const std::string& key) const {
  const auto found = strings.find(key);
  return found == strings.end() ? std::nullopt : std::optional<std::string>(found->second);
}

std::optional<double> ModelMetadata::number_field(const std::string& key) const {
  const auto found = numbers.find(key);
  return found == numbers.end() ? std::nullopt : std::optional<double>(found->second);
}

ModelMetadata parse_metadata(const std::string& json, const std::string& source) {
  ModelMetadata metadata = JsonReader(json, source).read_document();
  auto invalid = [&source](const std::string& what) {
    return std::runtime_error("pysalient: invalid metadata in " + source + ": " + what);
  };
  const double format_version = metadata.number_field("format_version").value_or(1.0);
  if (!(format_version >= 1.0) || format_version != std::floor(format_version)) {
    throw invalid("\"format_version\" must be a whole number >= 1");
  }
  if (format_version > kMetadataFormatVersion) {
    throw invalid("format_version " + std::to_string(static_cast<int64_t>(format_version)) +
                  " is newer than this runtime understands (" + std::to_string(kMetadataFormatVersion) +
                  "); rebuild against a newer pysalient");
  }
  metadata.format_version = static_cast<int>(format_version);
  if (metadata.format_version >= 2) {
    const std::optional<double> conf = metadata.number_field("conf");
    if (!conf || !(*conf >= 0.0 && *conf <= 1.0)) {
      throw invalid("\"conf\" (the default minimum score) is missing or not a number in [0, 1]");
    }
    metadata.conf = *conf;
  }
  if (!metadata.string_field("family")) {
    throw invalid("\"family\" is missing or not a string");
  }
  const auto class_names = metadata.string_arrays.find("class_names");
  if (class_names == metadata.string_arrays.end()) {
    throw invalid("\"class_names\" is missing or not an array of strings");
  }
  metadata.class_names = class_names->second;
  metadata.family = *metadata.string_field("family");
  metadata.format = metadata.string_field("format").value_or("");
  metadata.name = metadata.string_field("name").value_or("");
  metadata.version = metadata.string_field("pysalient_version").value_or("");
  const auto range = metadata.number_arrays.find("input_size_range");
  if (range != metadata.number_arrays.end()) {
    if (range->second.size() != 2 || range->second[0] < 1 || range->second[1] < range->second[0]) {
      throw invalid("\"input_size_range\" must be [min, max] with 1 <= min <= max");
    }
    metadata.min_input_size = static_cast<int64_t>(range->second[0]);
    metadata.max_input_size = static_cast<int64_t>(range->second[1]);
  }
  return metadata;
}

}  // namespace pysalient
