#include "control/json.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "control/format.hpp"

namespace ctlb::control {

const Json* Json::get(const std::string& key) const {
  if (!is_object()) return nullptr;
  const auto& o = as_object();
  const auto it = o.find(key);
  return it == o.end() ? nullptr : &it->second;
}

namespace {

void dump_to(const Json& j, std::string& out) {
  if (j.is_null()) {
    out += "null";
  } else if (j.is_bool()) {
    out += j.as_bool() ? "true" : "false";
  } else if (j.is_number()) {
    const double d = j.as_number();
    char buf[32];
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.007199254740992e15)
      std::snprintf(buf, sizeof buf, "%.0f", d);
    else if (std::isfinite(d))
      std::snprintf(buf, sizeof buf, "%.6g", d);
    else
      std::snprintf(buf, sizeof buf, "null");
    out += buf;
  } else if (j.is_string()) {
    out += '"';
    out += json_escape(j.as_string());
    out += '"';
  } else if (j.is_array()) {
    out += '[';
    bool first = true;
    for (const auto& e : j.as_array()) {
      if (!first) out += ',';
      first = false;
      dump_to(e, out);
    }
    out += ']';
  } else {
    out += '{';
    bool first = true;
    for (const auto& [k, v] : j.as_object()) {
      if (!first) out += ',';
      first = false;
      out += '"';
      out += json_escape(k);
      out += "\":";
      dump_to(v, out);
    }
    out += '}';
  }
}

class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}

  std::optional<Json> run(std::string* error) {
    auto v = value(0);
    skip_ws();
    if (v && i_ != s_.size()) fail("trailing characters");
    if (!v || !error_.empty()) {
      if (error) *error = error_ + " at byte " + std::to_string(i_);
      return std::nullopt;
    }
    return v;
  }

 private:
  static constexpr int kMaxDepth = 32;

  void fail(const char* what) {
    if (error_.empty()) error_ = what;
  }
  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  bool eat(char c) {
    skip_ws();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  bool literal(std::string_view w) {
    if (s_.substr(i_, w.size()) == w) {
      i_ += w.size();
      return true;
    }
    return false;
  }

  std::optional<Json> value(int depth) {
    if (depth > kMaxDepth) {
      fail("nested too deep");
      return std::nullopt;
    }
    skip_ws();
    if (i_ >= s_.size()) {
      fail("unexpected end");
      return std::nullopt;
    }
    const char c = s_[i_];
    if (c == '{') return object(depth);
    if (c == '[') return array(depth);
    if (c == '"') {
      auto s = string();
      if (!s) return std::nullopt;
      return Json(std::move(*s));
    }
    if (literal("true")) return Json(true);
    if (literal("false")) return Json(false);
    if (literal("null")) return Json(nullptr);
    return number();
  }

  std::optional<Json> number() {
    const std::size_t start = i_;
    if (i_ < s_.size() && s_[i_] == '-') ++i_;
    if (i_ + 1 < s_.size() && s_[i_] == '0' && s_[i_ + 1] >= '0' && s_[i_ + 1] <= '9') {
      fail("leading zero in a number");
      return std::nullopt;
    }
    std::size_t digits = 0;
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_, ++digits;
    if (i_ < s_.size() && s_[i_] == '.') {
      ++i_;
      while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_, ++digits;
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      ++i_;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
    }
    if (!digits) {
      fail("expected a value");
      return std::nullopt;
    }
    return Json(std::strtod(std::string(s_.substr(start, i_ - start)).c_str(), nullptr));
  }

  std::optional<std::string> string() {
    ++i_;  // opening quote
    std::string out;
    while (i_ < s_.size()) {
      const char c = s_[i_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) {
        fail("control character in string");
        return std::nullopt;
      }
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= s_.size()) break;
      const char e = s_[i_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          if (i_ + 4 > s_.size()) {
            fail("short \\u escape");
            return std::nullopt;
          }
          unsigned cp = 0;
          for (int k = 0; k < 4; ++k) {
            const char h = s_[i_++];
            cp <<= 4;
            if (h >= '0' && h <= '9') cp |= static_cast<unsigned>(h - '0');
            else if (h >= 'a' && h <= 'f') cp |= static_cast<unsigned>(h - 'a' + 10);
            else if (h >= 'A' && h <= 'F') cp |= static_cast<unsigned>(h - 'A' + 10);
            else {
              fail("bad \\u escape");
              return std::nullopt;
            }
          }
          if (cp < 0x80) {
            out += static_cast<char>(cp);
          } else if (cp < 0x800) {
            out += static_cast<char>(0xC0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3F));
          } else {
            out += static_cast<char>(0xE0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
          }
          break;
        }
        default:
          fail("bad escape");
          return std::nullopt;
      }
    }
    fail("unterminated string");
    return std::nullopt;
  }

  std::optional<Json> array(int depth) {
    ++i_;
    Json::Array a;
    if (eat(']')) return Json(std::move(a));
    for (;;) {
      auto v = value(depth + 1);
      if (!v) return std::nullopt;
      a.push_back(std::move(*v));
      if (eat(',')) continue;
      if (eat(']')) return Json(std::move(a));
      fail("expected , or ]");
      return std::nullopt;
    }
  }

  std::optional<Json> object(int depth) {
    ++i_;
    Json::Object o;
    if (eat('}')) return Json(std::move(o));
    for (;;) {
      skip_ws();
      if (i_ >= s_.size() || s_[i_] != '"') {
        fail("expected a member name");
        return std::nullopt;
      }
      auto k = string();
      if (!k) return std::nullopt;
      if (!eat(':')) {
        fail("expected :");
        return std::nullopt;
      }
      auto v = value(depth + 1);
      if (!v) return std::nullopt;
      if (!o.emplace(std::move(*k), std::move(*v)).second) {
        fail("duplicate member name");  // ambiguous: which one counts?
        return std::nullopt;
      }
      if (eat(',')) continue;
      if (eat('}')) return Json(std::move(o));
      fail("expected , or }");
      return std::nullopt;
    }
  }

  std::string_view s_;
  std::size_t i_ = 0;
  std::string error_;
};

}  // namespace

std::string Json::dump() const {
  std::string out;
  dump_to(*this, out);
  return out;
}

std::optional<Json> Json::parse(std::string_view text, std::string* error) { return Parser(text).run(error); }

}  // namespace ctlb::control
