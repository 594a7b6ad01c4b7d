// The project's corosync CPG binding: join one process group, multicast to it, and receive its
// messages and membership changes. Nothing of the C fence_virtd's CPG wire format is here: the
// payload is opaque bytes to this file.
//
// Rules this file keeps:
//  * cpg_initialize / cpg_join / cpg_mcast_joined / cpg_finalize run in AsyncWorkers, never on
//    the JavaScript thread (they are IPC round trips to corosync and may block);
//  * one thread per group polls the CPG fd (and a wake-up pipe) and calls cpg_dispatch; deliver
//    and confchg callbacks copy their data and hand it to JavaScript through one
//    ThreadSafeFunction;
//  * when corosync goes away (dispatch fails, the fd hangs up) JavaScript gets one `closed`
//    event with the cs_error_t and the group must be opened again;
//  * the native state lives in a shared_ptr held by the wrapper, the dispatch thread and every
//    running worker, so a garbage-collected wrapper never frees it under a call.
#include <napi.h>

#include <corosync/cpg.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Member {
  uint32_t nodeid;
  uint32_t pid;
  uint32_t reason;
};

struct Event {
  enum Kind { kDeliver, kConfchg, kClosed };
  explicit Event(Kind k) : kind(k) {}
  Kind kind;
  uint32_t nodeid = 0;
  uint32_t pid = 0;
  std::vector<uint8_t> data;
  std::vector<Member> members, left, joined;
  int error = 0;
};

const char* ErrorName(int err) {
  switch (err) {
    case CS_OK: return "CS_OK";
    case CS_ERR_LIBRARY: return "CS_ERR_LIBRARY (corosync not running or not reachable)";
    case CS_ERR_TIMEOUT: return "CS_ERR_TIMEOUT";
    case CS_ERR_TRY_AGAIN: return "CS_ERR_TRY_AGAIN";
    case CS_ERR_INVALID_PARAM: return "CS_ERR_INVALID_PARAM";
    case CS_ERR_NO_MEMORY: return "CS_ERR_NO_MEMORY";
    case CS_ERR_BAD_HANDLE: return "CS_ERR_BAD_HANDLE";
    case CS_ERR_ACCESS: return "CS_ERR_ACCESS (not allowed to use corosync IPC)";
    case CS_ERR_NOT_EXIST: return "CS_ERR_NOT_EXIST";
    case CS_ERR_EXIST: return "CS_ERR_EXIST";
    case CS_ERR_TOO_BIG: return "CS_ERR_TOO_BIG (message larger than CPG allows)";
    case CS_ERR_NOT_SUPPORTED: return "CS_ERR_NOT_SUPPORTED";
    default: return "cs_error";
  }
}

Napi::Error MakeError(Napi::Env env, const std::string& what, int err) {
  Napi::Error e = Napi::Error::New(env, what + ": " + ErrorName(err) + " (" + std::to_string(err) + ")");
  e.Set("csError", Napi::Number::New(env, err));
  return e;
}

struct State;
void OnDeliver(cpg_handle_t, const struct cpg_name*, uint32_t, uint32_t, void*, size_t);
void OnConfchg(cpg_handle_t, const struct cpg_name*, const struct cpg_address*, size_t,
               const struct cpg_address*, size_t, const struct cpg_address*, size_t);

struct State {
  std::string group;
  cpg_handle_t handle = 0;
  bool initialised = false;
  uint32_t nodeid = 0;
  int fd = -1;
  int wake[2] = {-1, -1};
  // The dispatch thread runs detached and holds its own reference to this state; close()
  // waits for `done` instead of joining, so the last reference may drop in any thread.
  bool thread_started = false;
  std::mutex done_mutex;
  std::condition_variable done_cv;
  bool done = false;
  std::mutex tsfn_mutex;
  bool tsfn_live = false;
  Napi::ThreadSafeFunction tsfn;
  std::atomic<bool> stopping{false};
  std::atomic<bool> closed{false};

  void Emit(Event* ev) {
    std::lock_guard<std::mutex> lock(tsfn_mutex);
    if (!tsfn_live) {
      delete ev;
      return;
    }
    if (tsfn.NonBlockingCall(ev, Convert) != napi_ok) delete ev;
  }

  static void Convert(Napi::Env env, Napi::Function fn, Event* ev) {
    std::unique_ptr<Event> owned(ev);
    if (env == nullptr || fn.IsEmpty()) return;
    auto list = [&](const std::vector<Member>& v) {
      Napi::Array a = Napi::Array::New(env, v.size());
      for (size_t i = 0; i < v.size(); i++) {
        Napi::Object m = Napi::Object::New(env);
        m.Set("nodeid", Napi::Number::New(env, v[i].nodeid));
        m.Set("pid", Napi::Number::New(env, v[i].pid));
        m.Set("reason", Napi::Number::New(env, v[i].reason));
        a.Set(i, m);
      }
      return a;
    };
    Napi::Object o = Napi::Object::New(env);
    switch (ev->kind) {
      case Event::kDeliver:
        o.Set("type", "deliver");
        o.Set("nodeid", Napi::Number::New(env, ev->nodeid));
        o.Set("pid", Napi::Number::New(env, ev->pid));
        o.Set("data", Napi::Buffer<uint8_t>::Copy(env, ev->data.data(), ev->data.size()));
        break;
      case Event::kConfchg:
        o.Set("type", "confchg");
        o.Set("members", list(ev->members));
        o.Set("left", list(ev->left));
        o.Set("joined", list(ev->joined));
        break;
      case Event::kClosed:
        o.Set("type", "closed");
        o.Set("error", Napi::Number::New(env, ev->error));
        o.Set("message", Napi::String::New(env, ErrorName(ev->error)));
        break;
    }
    try {
      fn.Call({o});
    } catch (const Napi::Error&) {
      // A throwing JS handler must not take the process down from a native callback.
    }
  }

  void Run() {
    Loop();
    std::lock_guard<std::mutex> lock(done_mutex);
    done = true;
    done_cv.notify_all();
  }

  void WaitDone() {
    std::unique_lock<std::mutex> lock(done_mutex);
    done_cv.wait(lock, [this] { return done; });
  }

  void Loop() {
    for (;;) {
      struct pollfd fds[2] = {{fd, POLLIN, 0}, {wake[0], POLLIN, 0}};
      int n = poll(fds, 2, -1);
      if (stopping) return;
      if (n < 0) {
        if (errno == EINTR) continue;
        Close(CS_ERR_LIBRARY);
        return;
      }
      if (fds[0].revents & POLLIN) {
        cs_error_t err = cpg_dispatch(handle, CS_DISPATCH_ALL);
        if (stopping) return;
        if (err != CS_OK && err != CS_ERR_TRY_AGAIN) {
          Close(err);
          return;
        }
      } else if (fds[0].revents & (POLLHUP | POLLERR | POLLNVAL)) {
        Close(CS_ERR_LIBRARY);
        return;
      }
    }
  }

  void Close(int err) {
    if (closed.exchange(true)) return;
    Event* ev = new Event(Event::kClosed);
    ev->error = err;
    Emit(ev);
  }

  void ReleaseTsfn() {
    std::lock_guard<std::mutex> lock(tsfn_mutex);
    if (tsfn_live) {
      tsfn_live = false;
      tsfn.Release();
    }
  }

  ~State() {
    if (wake[0] >= 0) close(wake[0]);
    if (wake[1] >= 0) close(wake[1]);
  }
};

void OnDeliver(cpg_handle_t handle, const struct cpg_name*, uint32_t nodeid, uint32_t pid,
               void* msg, size_t len) {
  void* ctx = nullptr;
  if (cpg_context_get(handle, &ctx) != CS_OK || ctx == nullptr) return;
  State* st = static_cast<State*>(ctx);
  Event* ev = new Event(Event::kDeliver);
  ev->nodeid = nodeid;
  ev->pid = pid;
  const uint8_t* p = static_cast<const uint8_t*>(msg);
  ev->data.assign(p, p + len);
  st->Emit(ev);
}

void OnConfchg(cpg_handle_t handle, const struct cpg_name*, const struct cpg_address* members,
               size_t nmembers, const struct cpg_address* left, size_t nleft,
               const struct cpg_address* joined, size_t njoined) {
  void* ctx = nullptr;
  if (cpg_context_get(handle, &ctx) != CS_OK || ctx == nullptr) return;
  State* st = static_cast<State*>(ctx);
  Event* ev = new Event(Event::kConfchg);
  auto copy = [](const struct cpg_address* a, size_t n, std::vector<Member>& out) {
    for (size_t i = 0; i < n; i++) out.push_back({a[i].nodeid, a[i].pid, a[i].reason});
  };
  copy(members, nmembers, ev->members);
  copy(left, nleft, ev->left);
  copy(joined, njoined, ev->joined);
  st->Emit(ev);
}

cpg_callbacks_t g_callbacks = {OnDeliver, OnConfchg};

bool SetGroupName(struct cpg_name* name, const std::string& group) {
  if (group.empty() || group.size() > CPG_MAX_NAME_LENGTH) return false;
  std::memset(name, 0, sizeof(*name));
  name->length = group.size();
  std::memcpy(name->value, group.data(), group.size());
  return true;
}

// Retries CS_ERR_TRY_AGAIN (corosync is busy, e.g. during a membership change) for up to 2 s.
template <typename F>
cs_error_t Retry(F f) {
  cs_error_t err = CS_ERR_TRY_AGAIN;
  for (int i = 0; i < 200; i++) {
    err = f();
    if (err != CS_ERR_TRY_AGAIN) return err;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return err;
}

// ---------------------------------------------------------------------------------------------

class Group : public Napi::ObjectWrap<Group> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "CpgGroup",
                       {InstanceMethod("mcast", &Group::Mcast),
                        InstanceMethod("close", &Group::CloseGroup),
                        InstanceAccessor("nodeId", &Group::NodeId, nullptr)});
  }

  explicit Group(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Group>(info) {}

  std::shared_ptr<State> state;

 private:
  Napi::Value NodeId(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), state ? state->nodeid : 0);
  }
  Napi::Value Mcast(const Napi::CallbackInfo& info);
  Napi::Value CloseGroup(const Napi::CallbackInfo& info);
};

Napi::FunctionReference* g_group_ctor = nullptr;

class OpenWorker : public Napi::AsyncWorker {
 public:
  OpenWorker(Napi::Env env, std::shared_ptr<State> st)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), st_(std::move(st)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    struct cpg_name name;
    if (!SetGroupName(&name, st_->group)) {
      err_ = CS_ERR_INVALID_PARAM;
      what_ = "invalid CPG group name";
      return;
    }
    err_ = Retry([&] { return cpg_initialize(&st_->handle, &g_callbacks); });
    if (err_ != CS_OK) {
      what_ = "cpg_initialize";
      return;
    }
    st_->initialised = true;
    cpg_context_set(st_->handle, st_.get());
    unsigned int local = 0;
    err_ = Retry([&] { return cpg_local_get(st_->handle, &local); });
    if (err_ != CS_OK) {
      what_ = "cpg_local_get";
      return;
    }
    st_->nodeid = local;
    err_ = cpg_fd_get(st_->handle, &st_->fd);
    if (err_ != CS_OK) {
      what_ = "cpg_fd_get";
      return;
    }
    err_ = Retry([&] { return cpg_join(st_->handle, &name); });
    if (err_ != CS_OK) what_ = "cpg_join";
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (err_ != CS_OK) {
      if (st_->initialised) cpg_finalize(st_->handle);
      st_->initialised = false;
      st_->ReleaseTsfn();
      deferred_.Reject(MakeError(env, what_, err_).Value());
      return;
    }
    if (pipe2(st_->wake, O_CLOEXEC) != 0) {
      cpg_finalize(st_->handle);
      st_->initialised = false;
      st_->ReleaseTsfn();
      deferred_.Reject(Napi::Error::New(env, "pipe2 failed").Value());
      return;
    }
    std::shared_ptr<State> keep = st_;
    st_->thread_started = true;
    std::thread([keep] { keep->Run(); }).detach();
    Napi::Object obj = g_group_ctor->New({});
    Group::Unwrap(obj)->state = st_;
    deferred_.Resolve(obj);
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<State> st_;
  cs_error_t err_ = CS_OK;
  std::string what_;
};

class McastWorker : public Napi::AsyncWorker {
 public:
  McastWorker(Napi::Env env, std::shared_ptr<State> st, std::vector<uint8_t> data)
      : Napi::AsyncWorker(env),
        deferred_(Napi::Promise::Deferred::New(env)),
        st_(std::move(st)),
        data_(std::move(data)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    if (st_->closed || st_->stopping || !st_->initialised) {
      err_ = CS_ERR_BAD_HANDLE;
      return;
    }
    struct iovec iov = {data_.data(), data_.size()};
    err_ = Retry([&] { return cpg_mcast_joined(st_->handle, CPG_TYPE_AGREED, &iov, 1); });
  }

  void OnOK() override {
    if (err_ == CS_OK)
      deferred_.Resolve(Env().Undefined());
    else
      deferred_.Reject(MakeError(Env(), "cpg_mcast_joined", err_).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<State> st_;
  std::vector<uint8_t> data_;
  cs_error_t err_ = CS_OK;
};

class CloseWorker : public Napi::AsyncWorker {
 public:
  CloseWorker(Napi::Env env, std::shared_ptr<State> st)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), st_(std::move(st)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    if (!st_->stopping.exchange(true)) {
      if (st_->wake[1] >= 0) {
        char c = 1;
        ssize_t ignored = write(st_->wake[1], &c, 1);
        (void)ignored;
      }
      if (st_->thread_started) st_->WaitDone();
      if (st_->initialised) {
        struct cpg_name name;
        if (!st_->closed && SetGroupName(&name, st_->group)) cpg_leave(st_->handle, &name);
        cpg_finalize(st_->handle);
        st_->initialised = false;
      }
    }
  }

  void OnOK() override {
    st_->ReleaseTsfn();
    deferred_.Resolve(Env().Undefined());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<State> st_;
};

Napi::Value Group::Mcast(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsBuffer()) {
    Napi::TypeError::New(env, "mcast(buffer): a Buffer is required").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto buf = info[0].As<Napi::Buffer<uint8_t>>();
  std::vector<uint8_t> data(buf.Data(), buf.Data() + buf.Length());
  auto* w = new McastWorker(env, state, std::move(data));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

Napi::Value Group::CloseGroup(const Napi::CallbackInfo& info) {
  auto* w = new CloseWorker(info.Env(), state);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// open(group: string, onEvent: (event) => void): Promise<CpgGroup>
Napi::Value Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsFunction()) {
    Napi::TypeError::New(env, "open(group, onEvent)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto st = std::make_shared<State>();
  st->group = info[0].As<Napi::String>().Utf8Value();
  st->tsfn = Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "cpg-events", 0, 1);
  st->tsfn_live = true;
  // The dispatch thread holds no JS reference; unref so an open group alone keeps no process
  // alive (the daemon's own timers do).
  st->tsfn.Unref(env);
  auto* w = new OpenWorker(env, st);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  g_group_ctor = new Napi::FunctionReference(Napi::Persistent(Group::Init(env)));
  exports.Set("open", Napi::Function::New(env, Open));
  exports.Set("maxGroupName", Napi::Number::New(env, CPG_MAX_NAME_LENGTH));
  return exports;
}

}  // namespace

NODE_API_MODULE(virtfence_cpg, Init)
