#include "control/api.hpp"

#include <cmath>
#include <cstdio>
#include <cstring>

namespace ctlb::control {

namespace {

struct ApiError {
  std::string message;
};

// The error is a one-line reason, also when it quotes what the client sent
// (a "cmd" or a backend with a newline): control characters are shown
// escaped.
std::string error_line(const std::string& message) {
  std::string line;
  for (const char c : message) {
    if (c == '\n') line += "\\n";
    else if (c == '\r') line += "\\r";
    else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
      line += buf;
    } else {
      line += c;
    }
  }
  Json::Object o;
  o["ok"] = false;
  o["error"] = line;
  return Json(std::move(o)).dump();
}

std::uint32_t get_uint(const Json& req, const std::string& key, std::uint32_t def, std::uint32_t max) {
  const Json* v = req.get(key);
  if (!v) return def;
  if (!v->is_number() || v->as_number() < 0 || v->as_number() > max || std::floor(v->as_number()) != v->as_number())
    throw ApiError{"\"" + key + "\" must be an integer in 0.." + std::to_string(max)};
  return static_cast<std::uint32_t>(v->as_number());
}

std::string state_list_ct() {
  std::string s;
  for (std::size_t i = 1; i < tcp::kCtStateCount; ++i) s += (s.empty() ? "" : ", ") + std::string(tcp::kCtStateNames[i]);
  return s;
}

std::string state_list_ep() {
  std::string s;
  for (auto n : tcp::kEpStateNames) s += (s.empty() ? "" : ", ") + std::string(n);
  return s;
}

template <class T, class Parse>
std::optional<T> get_state(const Json& req, const std::string& key, Parse parse, const std::string& expected) {
  const Json* v = req.get(key);
  if (!v) return std::nullopt;
  if (!v->is_string()) throw ApiError{"\"" + key + "\" must be a state name"};
  auto s = parse(v->as_string());
  if (!s) throw ApiError{"unknown " + key + " '" + v->as_string() + "' (expected one of: " + expected + ")"};
  return s;
}

void only_keys(const Json& req, std::initializer_list<const char*> keys) {
  for (const auto& [k, v] : req.as_object()) {
    bool known = false;
    for (const char* key : keys) known = known || k == key;
    if (!known) throw ApiError{"unknown field \"" + k + "\""};
  }
}

Json with_ok(Json result) {
  Json::Object o = result.as_object();
  o["ok"] = true;
  return Json(std::move(o));
}

Json reload_answer(const reload::Outcome& r) {
  Json::Object o;
  o["ok"] = r.ok;
  o["file"] = r.file;
  o["digest"] = r.digest;
  Json::Array lines;
  for (const auto& l : r.ok ? r.changes : r.errors) lines.push_back(Json(l));
  if (r.ok) {
    o["changes"] = std::move(lines);
  } else {
    std::string e = "reload refused, the running configuration is unchanged:";
    for (const auto& l : r.errors) e += "\n" + l;
    o["error"] = std::move(e);
    o["errors"] = std::move(lines);
  }
  return Json(std::move(o));
}

}  // namespace

std::string handle_api(const std::string& line, const View& view, const std::vector<shm::Stat>& extra,
                       std::uint64_t now_ms, const LbHooks& lb, const ReloadHook& reload) {
  std::string parse_error;
  const auto req = Json::parse(line, &parse_error);
  if (!req) return error_line("request is not valid JSON: " + parse_error);
  if (!req->is_object()) return error_line("request must be a JSON object");
  const Json* cmd = req->get("cmd");
  if (!cmd || !cmd->is_string()) return error_line("request needs \"cmd\": ping, stats, flows, stuck, lb, neighbours, backend or reload");
  try {
    const std::string& c = cmd->as_string();
    if (c == "ping") {
      only_keys(*req, {"cmd"});
      Json::Object o;
      o["ok"] = true;
      o["layout_version"] = view.header ? view.header->layout_version : 0u;
      o["workers"] = view.header ? view.header->worker_count : 0u;
      o["dataplane_pid"] = view.header ? view.header->dataplane_pid : 0u;
      o["config_digest"] = view.header ? std::string(view.header->config_digest,
                                                     strnlen(view.header->config_digest, sizeof view.header->config_digest))
                                         : std::string();
      return Json(std::move(o)).dump();
    }
    if (c == "stats") {
      only_keys(*req, {"cmd"});
      return with_ok(query_stats(view, extra)).dump();
    }
    // Mode lb: flows and stuck rows name their VIP and backend, from the
    // live generation, read under the publishers' lock.
    std::unique_lock<std::mutex> state_lock;
    auto lock_state = [&] {
      if (lb.state_mutex) state_lock = std::unique_lock(*lb.state_mutex);
    };
    auto live_state = [&]() -> const lb::State* {
      if (!lb.view || !lb.view->zone) return nullptr;
      lock_state();
      return shm::live_lb_generation(*lb.view->zone);
    };
    // flows and stuck: "vip" and "backend" (mode lb) select backend slots.
    auto backend_filter = [&](const lb::State* live, std::optional<std::vector<bool>>& slots) {
      const Json* vip = req->get("vip");
      const Json* backend = req->get("backend");
      if (!vip && !backend) return;
      if (!live) throw ApiError{"\"vip\" and \"backend\" need the dataplane in mode lb"};
      if (vip && !vip->is_string()) throw ApiError{"\"vip\" must be a string"};
      if (backend && !backend->is_string()) throw ApiError{"\"backend\" must be a string"};
      const std::string err = select_backends(*live, vip ? &vip->as_string() : nullptr,
                                              backend ? &backend->as_string() : nullptr, slots);
      if (!err.empty()) throw ApiError{err};
    };
    if (c == "flows") {
      only_keys(*req, {"cmd", "state", "initiator", "responder", "older_than_s", "port", "vip", "backend", "limit"});
      FlowFilter f;
      f.state = get_state<tcp::CtState>(*req, "state", parse_ct_state, state_list_ct());
      f.initiator = get_state<tcp::EpState>(*req, "initiator", parse_ep_state, state_list_ep());
      f.responder = get_state<tcp::EpState>(*req, "responder", parse_ep_state, state_list_ep());
      if (req->get("older_than_s")) f.older_than_s = get_uint(*req, "older_than_s", 0, 100u * 86400);
      if (req->get("port")) f.port = static_cast<std::uint16_t>(get_uint(*req, "port", 0, 65535));
      f.limit = get_uint(*req, "limit", 100, kMaxLimit);
      const lb::State* live = live_state();
      backend_filter(live, f.backend_slots);
      return with_ok(query_flows(view, f, now_ms, live)).dump();
    }
    if (c == "stuck") {
      only_keys(*req, {"cmd", "threshold_s", "vip", "backend", "limit"});
      const std::uint32_t threshold = get_uint(*req, "threshold_s", 60, 100u * 86400);
      const std::uint32_t limit = get_uint(*req, "limit", 100, kMaxLimit);
      const lb::State* live = live_state();
      std::optional<std::vector<bool>> slots;
      backend_filter(live, slots);
      return with_ok(query_stuck(view, threshold, now_ms, limit, live, slots)).dump();
    }
    if (c == "lb") {
      only_keys(*req, {"cmd"});
      if (!lb.view || !lb.view->zone) return error_line("the dataplane does not run in mode lb");
      lock_state();
      return with_ok(query_lb(*lb.view, view)).dump();
    }
    if (c == "neighbours") {
      only_keys(*req, {"cmd"});
      if (!lb.view || !lb.view->neighbours || !view.header) return error_line("the dataplane does not run in mode lb");
      return with_ok(query_neighbours(*lb.view, *view.header, now_ms)).dump();
    }
    if (c == "backend") {
      only_keys(*req, {"cmd", "op", "vip", "backend", "weight"});
      if (!lb.view || !lb.view->zone || !lb.change) return error_line("the dataplane does not run in mode lb");
      auto text = [&](const char* key) {
        const Json* v = req->get(key);
        if (!v || !v->is_string()) throw ApiError{std::string("\"") + key + "\" must be a string"};
        return v->as_string();
      };
      const std::string op_name = text("op");
      lb::Op op;
      if (op_name == "add") op = lb::Op::Add;
      else if (op_name == "remove") op = lb::Op::Remove;
      else if (op_name == "drain") op = lb::Op::Drain;
      else if (op_name == "down") op = lb::Op::Down;
      else if (op_name == "weight") op = lb::Op::Weight;
      else throw ApiError{"unknown op '" + op_name + "' (expected add, remove, drain, down or weight)"};
      if ((op == lb::Op::Weight) && !req->get("weight")) throw ApiError{"op weight needs \"weight\""};
      if (op != lb::Op::Add && op != lb::Op::Weight && req->get("weight"))
        throw ApiError{"\"weight\" goes with op add or weight only"};
      const std::uint32_t weight = get_uint(*req, "weight", 1, 65535);
      const std::string err = lb.change(op, text("vip"), text("backend"), weight);  // takes the lock itself
      if (!err.empty()) return error_line(err);
      lock_state();
      return with_ok(query_lb(*lb.view, view)).dump();
    }
    if (c == "reload") {
      only_keys(*req, {"cmd"});
      if (!reload) return error_line("this ctlb-control cannot reload its configuration");
      return reload_answer(reload()).dump();
    }
    return error_line("unknown cmd '" + c + "' (expected ping, stats, flows, stuck, lb, neighbours, backend or reload)");
  } catch (const ApiError& e) {
    return error_line(e.message);
  }
}

}  // namespace ctlb::control
