#include "control/client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ctlb::control {

CallResult call_control(const std::string& socket_path, const Json& request, int timeout_ms) {
  sockaddr_un su{};
  su.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof su.sun_path) return {CallStatus::Failed, "socket path too long", {}};
  std::strcpy(su.sun_path, socket_path.c_str());
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return {CallStatus::Failed, std::string("socket: ") + std::strerror(errno), {}};
  if (::connect(fd, reinterpret_cast<sockaddr*>(&su), sizeof su) != 0) {
    const int e = errno;
    ::close(fd);
    if (e == ENOENT || e == ECONNREFUSED)
      return {CallStatus::NotRunning,
              "ctlb-control is not running (no one listens on " + socket_path + ": " + std::strerror(e) + ")", {}};
    return {CallStatus::Failed, "cannot connect to " + socket_path + ": " + std::strerror(e), {}};
  }
  const std::string line = request.dump() + "\n";
  std::size_t off = 0;
  while (off < line.size()) {
    const ssize_t n = ::write(fd, line.data() + off, line.size() - off);
    if (n <= 0) {
      ::close(fd);
      return {CallStatus::Failed, std::string("write: ") + std::strerror(errno), {}};
    }
    off += static_cast<std::size_t>(n);
  }
  std::string in;
  char buf[65536];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    const int r = ::poll(&p, 1, timeout_ms);
    if (r <= 0) {
      ::close(fd);
      return {CallStatus::Failed, "ctlb-control did not answer within " + std::to_string(timeout_ms) + " ms", {}};
    }
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    in.append(buf, static_cast<std::size_t>(n));
    if (in.find('\n') != std::string::npos) break;
  }
  ::close(fd);
  std::string error;
  auto j = Json::parse(in.substr(0, in.find('\n')), &error);
  if (!j) return {CallStatus::Failed, "bad answer from ctlb-control: " + error, {}};
  return {CallStatus::Ok, "", std::move(*j)};
}

}  // namespace ctlb::control
