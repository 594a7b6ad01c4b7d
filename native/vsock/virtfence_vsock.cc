// AF_VSOCK for Node.js, which has no vsock sockets of its own.
//
// libuv cannot adopt an AF_VSOCK descriptor (it only knows TCP, UDP and unix sockets), so every
// vsock connection is carried to JavaScript through an AF_UNIX socketpair: a native thread per
// connection copies bytes between the vsock socket and one end of the pair, and JavaScript gets
// the other end as an ordinary net.Socket (new net.Socket({ fd })). Half-closes are passed on
// (shutdown(SHUT_WR) in each direction), so the request/response protocol sees EOF as it would
// on the vsock socket itself.
//
//  * listen(port, backlog, onEvent) binds VMADDR_CID_ANY:port and accepts in a thread of its
//    own; each connection is reported as { fd, cid, port } (cid: the peer's context id);
//  * connect(cid, port) connects in a worker thread (never on the JavaScript thread);
//  * localCid() asks /dev/vsock (IOCTL_VM_SOCKETS_GET_LOCAL_CID);
//  * socketpair() is for tests: an AF_UNIX stream pair, both ends as fds.
// Errors carry the errno name in `code` (EAFNOSUPPORT, EADDRINUSE, ENODEV, ECONNRESET, …).
#include <napi.h>

#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <chrono>
#include <condition_variable>
#include <thread>

namespace {

std::atomic<int> g_pumps{0};

const char* ErrnoName(int e) {
  switch (e) {
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EADDRINUSE: return "EADDRINUSE";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENODEV: return "ENODEV";
    case ENOENT: return "ENOENT";
    case ECONNREFUSED: return "ECONNREFUSED";
    case ECONNRESET: return "ECONNRESET";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case ENETUNREACH: return "ENETUNREACH";
    case EINVAL: return "EINVAL";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case ENOTCONN: return "ENOTCONN";
    case ESOCKTNOSUPPORT: return "ESOCKTNOSUPPORT";
    case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
    default: return "EIO";
  }
}

Napi::Error ErrnoError(Napi::Env env, const std::string& what, int e) {
  Napi::Error err = Napi::Error::New(env, what + ": " + std::strerror(e));
  err.Set("code", Napi::String::New(env, ErrnoName(e)));
  err.Set("errno", Napi::Number::New(env, e));
  err.Set("syscall", Napi::String::New(env, what));
  return err;
}

// Copies bytes both ways between a vsock socket and one end of a unix socketpair until both
// directions reached EOF or one side failed. Owns and closes both descriptors.
void Pump(int vs, int ux) {
  g_pumps++;
  bool vs_open = true, ux_open = true;  // read sides still open
  char buf[65536];
  auto copy = [&](int from, int to, bool& open) {
    ssize_t n = read(from, buf, sizeof buf);
    if (n > 0) {
      ssize_t off = 0;
      while (off < n) {
        ssize_t w = write(to, buf + off, n - off);
        if (w < 0) {
          if (errno == EINTR) continue;
          return false;
        }
        off += w;
      }
      return true;
    }
    if (n < 0 && errno == EINTR) return true;
    open = false;
    shutdown(to, SHUT_WR);
    return n == 0;
  };
  while (vs_open || ux_open) {
    struct pollfd fds[2] = {{vs, static_cast<short>(vs_open ? POLLIN : 0), 0},
                            {ux, static_cast<short>(ux_open ? POLLIN : 0), 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) && vs_open && !copy(vs, ux, vs_open)) break;
    if ((fds[1].revents & (POLLIN | POLLHUP | POLLERR)) && ux_open && !copy(ux, vs, ux_open)) break;
  }
  close(vs);
  close(ux);
  g_pumps--;
}

// Hands `vs` to a pump thread; returns the JavaScript end of the pair, or -1 with errno set.
int Bridge(int vs) {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
    int e = errno;
    close(vs);
    errno = e;
    return -1;
  }
  int ux = pair[1];
  std::thread([vs, ux] { Pump(vs, ux); }).detach();
  return pair[0];
}

// ---------------------------------------------------------------------------------------------
// Listening

struct Connection {
  int fd = -1;  // JavaScript end; -1 with err set on failure
  uint32_t cid = 0;
  uint32_t port = 0;
  int err = 0;
};

struct ListenState {
  int fd = -1;
  int wake[2] = {-1, -1};
  std::mutex mutex;
  bool tsfn_live = false;
  Napi::ThreadSafeFunction tsfn;
  std::atomic<bool> stopping{false};
  std::mutex done_mutex;
  std::condition_variable done_cv;
  bool done = false;

  void Emit(Connection* c) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!tsfn_live || tsfn.NonBlockingCall(c, Convert) != napi_ok) {
      if (c->fd >= 0) close(c->fd);
      delete c;
    }
  }

  static void Convert(Napi::Env env, Napi::Function fn, Connection* c) {
    std::unique_ptr<Connection> owned(c);
    if (env == nullptr) {
      if (c->fd >= 0) close(c->fd);
      return;
    }
    Napi::Object o = Napi::Object::New(env);
    if (c->fd < 0) {
      o.Set("error", ErrnoError(env, "accept", c->err).Value());
    } else {
      o.Set("fd", Napi::Number::New(env, c->fd));
      o.Set("cid", Napi::Number::New(env, c->cid));
      o.Set("port", Napi::Number::New(env, c->port));
    }
    try {
      fn.Call({o});
    } catch (const Napi::Error&) {
    }
  }

  void Run() {
    while (!stopping) {
      struct pollfd fds[2] = {{fd, POLLIN, 0}, {wake[0], POLLIN, 0}};
      if (poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (stopping) break;
      if (!(fds[0].revents & POLLIN)) continue;
      struct sockaddr_vm peer;
      socklen_t len = sizeof peer;
      std::memset(&peer, 0, sizeof peer);
      int c = accept4(fd, reinterpret_cast<struct sockaddr*>(&peer), &len, SOCK_CLOEXEC);
      auto* conn = new Connection();
      if (c < 0) {
        if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED) {
          delete conn;
          continue;
        }
        conn->err = errno;
        Emit(conn);
        // EMFILE and the like: back off instead of spinning.
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        continue;
      }
      conn->cid = peer.svm_cid;
      conn->port = peer.svm_port;
      conn->fd = Bridge(c);
      if (conn->fd < 0) conn->err = errno;
      Emit(conn);
    }
    std::lock_guard<std::mutex> lock(done_mutex);
    done = true;
    done_cv.notify_all();
  }

  void Stop() {
    if (stopping.exchange(true)) return;
    char b = 1;
    ssize_t ignored = write(wake[1], &b, 1);
    (void)ignored;
    {
      std::unique_lock<std::mutex> lock(done_mutex);
      done_cv.wait(lock, [this] { return done; });
    }
    close(fd);
    close(wake[0]);
    close(wake[1]);
    std::lock_guard<std::mutex> lock(mutex);
    if (tsfn_live) {
      tsfn_live = false;
      tsfn.Release();
    }
  }
};

class Listener : public Napi::ObjectWrap<Listener> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "VsockListener",
                       {InstanceMethod("close", &Listener::Close),
                        InstanceAccessor("port", &Listener::Port, nullptr)});
  }
  explicit Listener(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Listener>(info) {}
  ~Listener() override {
    if (state) state->Stop();
  }
  std::shared_ptr<ListenState> state;
  uint32_t port = 0;

 private:
  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (state) state->Stop();
    return info.Env().Undefined();
  }
  Napi::Value Port(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), port); }
};

Napi::FunctionReference* g_listener_ctor = nullptr;

// listen(port, backlog, onEvent): binds VMADDR_CID_ANY:port.
Napi::Value Listen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsFunction()) {
    Napi::TypeError::New(env, "listen(port, backlog, onEvent)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  uint32_t port = info[0].As<Napi::Number>().Uint32Value();
  int backlog = info[1].As<Napi::Number>().Int32Value();
  int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ErrnoError(env, "socket(AF_VSOCK)", errno).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  struct sockaddr_vm addr;
  std::memset(&addr, 0, sizeof addr);
  addr.svm_family = AF_VSOCK;
  addr.svm_cid = VMADDR_CID_ANY;
  addr.svm_port = port;
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(fd, backlog) != 0) {
    int e = errno;
    close(fd);
    ErrnoError(env, "bind/listen(AF_VSOCK)", e).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  struct sockaddr_vm bound;
  socklen_t len = sizeof bound;
  uint32_t actual = port;
  if (getsockname(fd, reinterpret_cast<struct sockaddr*>(&bound), &len) == 0) actual = bound.svm_port;
  auto st = std::make_shared<ListenState>();
  st->fd = fd;
  if (pipe2(st->wake, O_CLOEXEC) != 0) {
    int e = errno;
    close(fd);
    ErrnoError(env, "pipe2", e).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  st->tsfn = Napi::ThreadSafeFunction::New(env, info[2].As<Napi::Function>(), "vsock-accept", 0, 1);
  st->tsfn_live = true;
  std::shared_ptr<ListenState> keep = st;
  std::thread([keep] { keep->Run(); }).detach();
  Napi::Object obj = g_listener_ctor->New({});
  Listener* l = Listener::Unwrap(obj);
  l->state = st;
  l->port = actual;
  return obj;
}

// ---------------------------------------------------------------------------------------------
// Connecting

class ConnectWorker : public Napi::AsyncWorker {
 public:
  ConnectWorker(Napi::Env env, uint32_t cid, uint32_t port)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), cid_(cid), port_(port) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      err_ = errno;
      what_ = "socket(AF_VSOCK)";
      return;
    }
    struct sockaddr_vm addr;
    std::memset(&addr, 0, sizeof addr);
    addr.svm_family = AF_VSOCK;
    addr.svm_cid = cid_;
    addr.svm_port = port_;
    int rc;
    do {
      rc = connect(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof addr);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
      err_ = errno;
      what_ = "connect";
      close(fd);
      return;
    }
    out_ = Bridge(fd);
    if (out_ < 0) {
      err_ = errno;
      what_ = "socketpair";
    }
  }

  void OnOK() override {
    if (err_ != 0)
      deferred_.Reject(ErrnoError(Env(), what_, err_).Value());
    else
      deferred_.Resolve(Napi::Number::New(Env(), out_));
  }

 private:
  Napi::Promise::Deferred deferred_;
  uint32_t cid_, port_;
  int out_ = -1;
  int err_ = 0;
  std::string what_;
};

Napi::Value Connect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) {
    Napi::TypeError::New(env, "connect(cid, port)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto* w = new ConnectWorker(env, info[0].As<Napi::Number>().Uint32Value(),
                              info[1].As<Napi::Number>().Uint32Value());
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

Napi::Value LocalCid(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = open("/dev/vsock", O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    ErrnoError(env, "open(/dev/vsock)", errno).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  unsigned int cid = 0;
  int rc = ioctl(fd, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &cid);
  int e = errno;
  close(fd);
  if (rc != 0) {
    ErrnoError(env, "ioctl(IOCTL_VM_SOCKETS_GET_LOCAL_CID)", e).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, cid);
}

Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
    ErrnoError(env, "socketpair", errno).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Array a = Napi::Array::New(env, 2);
  a.Set(0u, Napi::Number::New(env, pair[0]));
  a.Set(1u, Napi::Number::New(env, pair[1]));
  return a;
}

Napi::Value Pumps(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), g_pumps.load()); }

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  g_listener_ctor = new Napi::FunctionReference(Napi::Persistent(Listener::Init(env)));
  exports.Set("listen", Napi::Function::New(env, Listen));
  exports.Set("connect", Napi::Function::New(env, Connect));
  exports.Set("localCid", Napi::Function::New(env, LocalCid));
  exports.Set("socketpair", Napi::Function::New(env, SocketPair));
  exports.Set("pumps", Napi::Function::New(env, Pumps));
  exports.Set("VMADDR_CID_ANY", Napi::Number::New(env, VMADDR_CID_ANY));
  exports.Set("VMADDR_CID_HOST", Napi::Number::New(env, VMADDR_CID_HOST));
  return exports;
}

}  // namespace

NODE_API_MODULE(virtfence_vsock, Init)
