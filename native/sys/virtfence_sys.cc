// Small system calls Node.js has no API for, kept apart from the libvirt addon so that hosts and
// guests without libvirt can load it. Today: one datagram to systemd's NOTIFY_SOCKET.
#include <napi.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace {

// notify(socketPath, message) -> 0, or the errno of the failed call.
// socketPath is a file system path or an abstract name written with a leading '@' (sd_notify's
// convention); the message is sent as one datagram, as sd_notify does, without credentials.
Napi::Value Notify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString()) {
    Napi::TypeError::New(env, "notify(socketPath: string, message: string)")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const std::string path = info[0].As<Napi::String>().Utf8Value();
  const std::string message = info[1].As<Napi::String>().Utf8Value();

  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || (path[0] != '/' && path[0] != '@') || path.size() > sizeof(addr.sun_path)) {
    return Napi::Number::New(env, EINVAL);
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
  if (path[0] == '@') {
    addr.sun_path[0] = '\0';  // abstract namespace: no terminating NUL, length is exact
  } else if (path.size() < sizeof(addr.sun_path)) {
    len += 1;  // include the terminating NUL of a path name
  }

  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Napi::Number::New(env, errno);
  ssize_t sent;
  do {
    sent = sendto(fd, message.data(), message.size(), MSG_NOSIGNAL,
                  reinterpret_cast<const sockaddr*>(&addr), len);
  } while (sent < 0 && errno == EINTR);
  int err = sent < 0 ? errno : (static_cast<size_t>(sent) == message.size() ? 0 : EMSGSIZE);
  close(fd);
  return Napi::Number::New(env, err);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("notify", Napi::Function::New(env, Notify, "notify"));
  return exports;
}

}  // namespace

NODE_API_MODULE(virtfence_sys, Init)
