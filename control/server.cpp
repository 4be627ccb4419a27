#include "control/server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace ctlb::control {

namespace {

constexpr std::size_t kMaxRequest = 64 * 1024;

std::string errno_text() { return std::strerror(errno); }

// Reads until a newline (API) or an empty line (HTTP), bounded in size and
// in time (2 s of silence ends it).
std::string read_request(int fd, bool http) {
  std::string in;
  char buf[4096];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 2000) <= 0) break;
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    in.append(buf, static_cast<std::size_t>(n));
    if (in.size() > kMaxRequest) break;
    if (!http && in.find('\n') != std::string::npos) break;
    if (http && in.find("\r\n\r\n") != std::string::npos) break;
  }
  return in;
}

void write_all(int fd, const std::string& s) {
  std::size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n <= 0) return;
    off += static_cast<std::size_t>(n);
  }
}

}  // namespace

Server::~Server() { close(); }

Result<bool> Server::open(const std::string& socket_path, const std::string& metrics_address) {
  socket_path_ = socket_path;
  sockaddr_un su{};
  su.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof su.sun_path) return Error{"control socket path too long: " + socket_path};
  std::strcpy(su.sun_path, socket_path.c_str());
  std::error_code ec;
  const auto dir = std::filesystem::path(socket_path).parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir, ec);
  ::unlink(socket_path.c_str());  // a stale socket of a previous run
  api_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (api_fd_ < 0 || ::bind(api_fd_, reinterpret_cast<sockaddr*>(&su), sizeof su) != 0 ||
      ::chmod(socket_path.c_str(), 0660) != 0 || ::listen(api_fd_, 16) != 0)
    return Error{"cannot listen on control socket " + socket_path + ": " + errno_text()};

  if (metrics_address.empty()) return true;
  const auto colon = metrics_address.rfind(':');
  if (colon == std::string::npos) return Error{"metrics address must be HOST:PORT: " + metrics_address};
  const std::string host = metrics_address.substr(0, colon);
  const int port = std::atoi(metrics_address.c_str() + colon + 1);
  sockaddr_in si{};
  si.sin_family = AF_INET;
  si.sin_port = htons(static_cast<std::uint16_t>(port));
  if (port <= 0 || port > 65535 || inet_pton(AF_INET, host.c_str(), &si.sin_addr) != 1)
    return Error{"metrics address must be an IPv4 HOST:PORT: " + metrics_address};
  http_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(http_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (http_fd_ < 0 || ::bind(http_fd_, reinterpret_cast<sockaddr*>(&si), sizeof si) != 0 || ::listen(http_fd_, 16) != 0)
    return Error{"cannot listen for metrics on " + metrics_address + ": " + errno_text()};
  return true;
}

void Server::run(const Handlers& h, const std::atomic<bool>& stop) {
  while (!stop.load()) {
    pollfd fds[2] = {{api_fd_, POLLIN, 0}, {http_fd_, POLLIN, 0}};
    const nfds_t n = http_fd_ >= 0 ? 2 : 1;
    if (::poll(fds, n, 100) <= 0) continue;
    for (nfds_t i = 0; i < n; ++i) {
      if (!(fds[i].revents & POLLIN)) continue;
      const int c = ::accept4(fds[i].fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      if (i == 0) {
        std::string line = read_request(c, false);
        if (const auto nl = line.find('\n'); nl != std::string::npos) line.resize(nl);
        write_all(c, h.api(line) + "\n");
      } else {
        const std::string req = read_request(c, true);
        if (req.rfind("GET /metrics ", 0) == 0 || req.rfind("GET /metrics\r", 0) == 0) {
          const std::string body = h.metrics();
          write_all(c, "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
        } else {
          const std::string body = "ctlb-control: only GET /metrics is served here\n";
          write_all(c, "HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
        }
      }
      ::close(c);
    }
  }
}

void Server::close() {
  if (api_fd_ >= 0) {
    ::close(api_fd_);
    ::unlink(socket_path_.c_str());
    api_fd_ = -1;
  }
  if (http_fd_ >= 0) {
    ::close(http_fd_);
    http_fd_ = -1;
  }
}

}  // namespace ctlb::control
