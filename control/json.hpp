#pragma once
// A small JSON value with a strict parser and a writer: the control socket's
// requests and responses. Enough for objects, arrays, strings, numbers,
// booleans and null; rejects anything else with the byte offset.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace ctlb::control {

class Json {
 public:
  using Array = std::vector<Json>;
  using Object = std::map<std::string, Json>;

  Json() : v_(nullptr) {}
  Json(std::nullptr_t) : v_(nullptr) {}                          // NOLINT
  Json(bool b) : v_(b) {}                                         // NOLINT
  Json(double d) : v_(d) {}                                       // NOLINT
  Json(std::int64_t i) : v_(static_cast<double>(i)) {}            // NOLINT
  Json(std::uint64_t u) : v_(static_cast<double>(u)) {}           // NOLINT
  Json(int i) : v_(static_cast<double>(i)) {}                     // NOLINT
  Json(unsigned u) : v_(static_cast<double>(u)) {}                // NOLINT
  Json(std::string s) : v_(std::move(s)) {}                       // NOLINT
  Json(std::string_view s) : v_(std::string(s)) {}                // NOLINT
  Json(const char* s) : v_(std::string(s)) {}                     // NOLINT
  Json(Array a) : v_(std::make_shared<Array>(std::move(a))) {}   // NOLINT
  Json(Object o) : v_(std::make_shared<Object>(std::move(o))) {} // NOLINT

  bool is_null() const { return std::holds_alternative<std::nullptr_t>(v_); }
  bool is_bool() const { return std::holds_alternative<bool>(v_); }
  bool is_number() const { return std::holds_alternative<double>(v_); }
  bool is_string() const { return std::holds_alternative<std::string>(v_); }
  bool is_array() const { return std::holds_alternative<std::shared_ptr<Array>>(v_); }
  bool is_object() const { return std::holds_alternative<std::shared_ptr<Object>>(v_); }

  bool as_bool() const { return std::get<bool>(v_); }
  double as_number() const { return std::get<double>(v_); }
  const std::string& as_string() const { return std::get<std::string>(v_); }
  const Array& as_array() const { return *std::get<std::shared_ptr<Array>>(v_); }
  const Object& as_object() const { return *std::get<std::shared_ptr<Object>>(v_); }

  // Member of an object, or nullptr when absent (or not an object).
  const Json* get(const std::string& key) const;

  std::string dump() const;

  // Parses exactly one JSON value (surrounding whitespace allowed).
  static std::optional<Json> parse(std::string_view text, std::string* error = nullptr);

 private:
  std::variant<std::nullptr_t, bool, double, std::string, std::shared_ptr<Array>, std::shared_ptr<Object>> v_;
};

}  // namespace ctlb::control
