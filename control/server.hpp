#pragma once
// The control process's two listeners, on one poll() loop: the JSON API on a
// Unix socket (one request line, one response line per connection) and the
// Prometheus scrape endpoint over HTTP/1.0 (GET /metrics).
#include <atomic>
#include <functional>
#include <string>

#include "dataplane/common/result.hpp"

namespace ctlb::control {

struct Handlers {
  std::function<std::string(const std::string& request_line)> api;  // returns one JSON line
  std::function<std::string()> metrics;                              // Prometheus text
};

class Server {
 public:
  ~Server();
  // Binds both sockets; the Unix socket gets mode 0660. An empty metrics
  // address disables the HTTP listener.
  Result<bool> open(const std::string& socket_path, const std::string& metrics_address);
  // Serves until `stop` is set (checks it every 100 ms).
  void run(const Handlers& h, const std::atomic<bool>& stop);
  void close();

 private:
  int api_fd_ = -1;
  int http_fd_ = -1;
  std::string socket_path_;
};

}  // namespace ctlb::control
