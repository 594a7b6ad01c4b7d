// The project's libvirt binding: exactly what a fencing daemon needs, nothing more.
//
// Rules this file keeps:
//  * every blocking libvirt call runs in an AsyncWorker, never on the JS thread;
//  * domains are addressed by UUID string; virDomainPtr handles are looked up, used and freed
//    inside one worker, so none ever reaches JavaScript;
//  * a worker holds a persistent reference to its Connection object and its own virConnectPtr
//    reference, so a garbage-collected wrapper never frees a connection under a running call;
//  * event and close callbacks go through ThreadSafeFunctions owned by sinks whose lifetime is
//    tied to libvirt's registration, not to the JS wrapper.
#include <napi.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

constexpr int kNoConnect = 5;  // VIR_ERR_NO_CONNECT: used for calls on a closed connection

std::atomic<int> g_live_wrappers{0};
std::atomic<int> g_live_states{0};

// ---------------------------------------------------------------------------------------------
// Process-wide set-up: silence libvirt's stderr printer, run the default event loop in a thread.

void SilentErrorHandler(void*, virErrorPtr) {}

std::once_flag g_event_loop_once;
std::atomic<bool> g_event_loop_ok{false};

void EnsureEventLoop() {
  std::call_once(g_event_loop_once, [] {
    virSetErrorFunc(nullptr, SilentErrorHandler);
    if (virInitialize() < 0 || virEventRegisterDefaultImpl() < 0) return;
    g_event_loop_ok = true;
    std::thread([] {
      for (;;) {
        if (virEventRunDefaultImpl() < 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }).detach();
  });
}

// ---------------------------------------------------------------------------------------------
// Errors: captured in the thread that failed (libvirt errors are thread-local).

struct LvError {
  int code = -1;
  int domain = 0;
  std::string message;
};

LvError CaptureError(const std::string& fallback) {
  LvError out;
  out.message = fallback;
  virErrorPtr err = virGetLastError();
  if (err != nullptr) {
    out.code = err->code;
    out.domain = err->domain;
    if (err->message != nullptr) out.message = err->message;
  }
  virResetLastError();
  return out;
}

Napi::Error MakeError(Napi::Env env, const LvError& err) {
  Napi::Error error = Napi::Error::New(env, err.message);
  error.Set("code", Napi::Number::New(env, err.code));
  error.Set("domain", Napi::Number::New(env, err.domain));
  return error;
}

// ---------------------------------------------------------------------------------------------
// Plain data copied out of libvirt in worker or event threads, turned into JS on the JS thread.

struct DomInfo {
  std::string uuid;
  std::string name;
  int state = 0;
  int id = -1;
};

bool ReadDomain(virDomainPtr dom, DomInfo& out) {
  char uuid[VIR_UUID_STRING_BUFLEN];
  if (virDomainGetUUIDString(dom, uuid) < 0) return false;
  const char* name = virDomainGetName(dom);
  int state = 0;
  int reason = 0;
  if (virDomainGetState(dom, &state, &reason, 0) < 0) return false;
  unsigned int id = virDomainGetID(dom);
  out.uuid = uuid;
  out.name = name != nullptr ? name : "";
  out.state = state;
  out.id = id == static_cast<unsigned int>(-1) ? -1 : static_cast<int>(id);
  return true;
}

Napi::Object DomInfoToJs(Napi::Env env, const DomInfo& info) {
  Napi::Object obj = Napi::Object::New(env);
  obj.Set("uuid", info.uuid);
  obj.Set("name", info.name);
  obj.Set("state", info.state);
  obj.Set("id", info.id);
  return obj;
}

struct LifecycleData {
  std::string uuid;
  std::string name;
  int event;
  int detail;
};

// ---------------------------------------------------------------------------------------------
// Channels to JavaScript. A ThreadSafeFunction must not be used after Node finalises it (at
// environment teardown it is finalised whatever our thread count says), so every use goes
// through a Channel whose flag the TSFN finaliser clears under the same mutex.

class Channel {
 public:
  static std::shared_ptr<Channel> Create(Napi::Env env, Napi::Function fn, const char* name) {
    auto channel = std::make_shared<Channel>();
    auto* keep = new std::shared_ptr<Channel>(channel);
    channel->tsfn_ = Napi::ThreadSafeFunction::New(env, fn, name, 0, 1, keep,
                                                   [](Napi::Env, std::shared_ptr<Channel>* kept) {
                                                     (*kept)->MarkFinalised();
                                                     delete kept;
                                                   });
    channel->tsfn_.Unref(env);  // an open connection alone must not keep the process alive
    return channel;
  }

  template <typename T, typename Callback>
  void Send(T* data, Callback callback) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!open_ || tsfn_.NonBlockingCall(data, callback) != napi_ok) delete data;
  }

  // Any thread; idempotent.
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    if (!open_) return;
    open_ = false;
    tsfn_.Release();
  }

 private:
  void MarkFinalised() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = false;
  }

  std::mutex mu_;
  bool open_ = true;
  Napi::ThreadSafeFunction tsfn_;
};

using ChannelPtr = std::shared_ptr<Channel>;

// Callback sinks. The event sink is freed by libvirt's free callback (after libvirt guarantees
// the callback no longer runs); the close sink is freed by ConnState::Shutdown after unregistering.

struct EventSink {
  ChannelPtr channel;
};

struct CloseSink {
  ChannelPtr channel;
  std::atomic<bool> fired{false};
};

void DeliverLifecycle(Napi::Env env, Napi::Function fn, LifecycleData* data) {
  if (env != nullptr && fn != nullptr) {
    Napi::Object obj = Napi::Object::New(env);
    obj.Set("uuid", data->uuid);
    obj.Set("name", data->name);
    obj.Set("event", data->event);
    obj.Set("detail", data->detail);
    fn.Call({obj});
  }
  delete data;
}

int OnLifecycle(virConnectPtr, virDomainPtr dom, int event, int detail, void* opaque) {
  auto* sink = static_cast<EventSink*>(opaque);
  char uuid[VIR_UUID_STRING_BUFLEN] = {0};
  virDomainGetUUIDString(dom, uuid);
  const char* name = virDomainGetName(dom);
  auto* data = new LifecycleData{uuid, name != nullptr ? name : "", event, detail};
  sink->channel->Send(data, DeliverLifecycle);
  return 0;
}

void FreeEventSink(void* opaque) {
  auto* sink = static_cast<EventSink*>(opaque);
  sink->channel->Release();
  delete sink;
}

const char* CloseReasonName(int reason) {
  switch (reason) {
    case VIR_CONNECT_CLOSE_REASON_EOF:
      return "eof";
    case VIR_CONNECT_CLOSE_REASON_KEEPALIVE:
      return "keepalive";
    case VIR_CONNECT_CLOSE_REASON_CLIENT:
      return "client";
    default:
      return "error";
  }
}

void DeliverClose(Napi::Env env, Napi::Function fn, int* reason) {
  if (env != nullptr && fn != nullptr) fn.Call({Napi::String::New(env, CloseReasonName(*reason))});
  delete reason;
}

void OnConnClose(virConnectPtr, int reason, void* opaque) {
  auto* sink = static_cast<CloseSink*>(opaque);
  if (sink->fired.exchange(true)) return;
  auto* data = new int(reason);
  sink->channel->Send(data, DeliverClose);
}

// ---------------------------------------------------------------------------------------------
// Connection state shared by the JS wrapper and every in-flight worker.

class ConnState {
 public:
  ConnState() { ++g_live_states; }
  ~ConnState() {
    Shutdown();
    --g_live_states;
  }

  void Attach(virConnectPtr conn, int event_id, CloseSink* close_sink) {
    std::lock_guard<std::mutex> lock(mu_);
    conn_ = conn;
    event_id_ = event_id;
    close_sink_ = close_sink;
  }

  // A new reference for one worker (non-blocking), or nullptr once closed.
  virConnectPtr Acquire() {
    std::lock_guard<std::mutex> lock(mu_);
    if (conn_ == nullptr) return nullptr;
    virConnectRef(conn_);
    return conn_;
  }

  bool IsOpen() {
    std::lock_guard<std::mutex> lock(mu_);
    return conn_ != nullptr;
  }

  bool IsAlive() {
    std::lock_guard<std::mutex> lock(mu_);
    return conn_ != nullptr && virConnectIsAlive(conn_) == 1;
  }

  // Blocking: run only in a worker or a helper thread. Idempotent.
  void Shutdown() {
    virConnectPtr conn;
    int event_id;
    CloseSink* close_sink;
    {
      std::lock_guard<std::mutex> lock(mu_);
      conn = conn_;
      event_id = event_id_;
      close_sink = close_sink_;
      conn_ = nullptr;
      event_id_ = -1;
      close_sink_ = nullptr;
    }
    if (conn == nullptr) return;
    if (event_id >= 0 && virConnectDomainEventDeregisterAny(conn, event_id) < 0) virResetLastError();
    if (close_sink != nullptr) {
      if (virConnectUnregisterCloseCallback(conn, OnConnClose) < 0) virResetLastError();
      close_sink->channel->Release();
      delete close_sink;
    }
    virConnectClose(conn);
    virResetLastError();
  }

 private:
  std::mutex mu_;
  virConnectPtr conn_ = nullptr;
  int event_id_ = -1;
  CloseSink* close_sink_ = nullptr;
};

using StatePtr = std::shared_ptr<ConnState>;

// ---------------------------------------------------------------------------------------------
// Workers.

class CallWorker : public Napi::AsyncWorker {
 public:
  CallWorker(Napi::Env env, virConnectPtr conn)
      : Napi::AsyncWorker(env, "virtfence_libvirt"), deferred_(Napi::Promise::Deferred::New(env)), conn_(conn) {}

  void Hold(Napi::Object self) { self_ = Napi::Persistent(self); }
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  virtual void Run() = 0;
  virtual Napi::Value Result(Napi::Env env) { return env.Undefined(); }

  void Fail(const std::string& what) {
    err_ = CaptureError(what);
    SetError(err_.message);
  }

  virConnectPtr conn() const { return conn_; }

 private:
  void Execute() final {
    Run();
    if (conn_ != nullptr) {
      virConnectClose(conn_);  // drops this worker's reference only
      conn_ = nullptr;
      virResetLastError();
    }
  }
  void OnOK() final { deferred_.Resolve(Result(Env())); }
  void OnError(const Napi::Error&) final { deferred_.Reject(MakeError(Env(), err_).Value()); }

  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference self_;
  virConnectPtr conn_;
  LvError err_;
};

// Looks a domain up by UUID inside the worker; the handle never leaves it.
class DomainWorker : public CallWorker {
 public:
  enum class Op { Destroy, Create, Undefine, GetXml };
  DomainWorker(Napi::Env env, virConnectPtr conn, std::string uuid, Op op, unsigned int flags)
      : CallWorker(env, conn), uuid_(std::move(uuid)), op_(op), flags_(flags) {}

 protected:
  void Run() override {
    virDomainPtr dom = virDomainLookupByUUIDString(conn(), uuid_.c_str());
    if (dom == nullptr) return Fail("domain not found: " + uuid_);
    int rc = 0;
    switch (op_) {
      case Op::Destroy:
        rc = virDomainDestroy(dom);
        break;
      case Op::Create:
        rc = virDomainCreate(dom);
        break;
      case Op::Undefine:
        rc = virDomainUndefine(dom);
        break;
      case Op::GetXml: {
        char* xml = virDomainGetXMLDesc(dom, flags_);
        if (xml == nullptr) {
          rc = -1;
        } else {
          xml_ = xml;
          free(xml);
        }
        break;
      }
    }
    if (rc < 0) Fail("libvirt operation failed on " + uuid_);
    virDomainFree(dom);
  }
  Napi::Value Result(Napi::Env env) override {
    return op_ == Op::GetXml ? Napi::String::New(env, xml_) : env.Undefined();
  }

 private:
  std::string uuid_;
  Op op_;
  unsigned int flags_;
  std::string xml_;
};

class LookupWorker : public CallWorker {
 public:
  enum class By { Name, Uuid, CreateXml, DefineXml };
  LookupWorker(Napi::Env env, virConnectPtr conn, std::string key, By by)
      : CallWorker(env, conn), key_(std::move(key)), by_(by) {}

 protected:
  void Run() override {
    virDomainPtr dom = nullptr;
    switch (by_) {
      case By::Name:
        dom = virDomainLookupByName(conn(), key_.c_str());
        break;
      case By::Uuid:
        dom = virDomainLookupByUUIDString(conn(), key_.c_str());
        break;
      case By::CreateXml:
        dom = virDomainCreateXML(conn(), key_.c_str(), 0);
        break;
      case By::DefineXml:
        dom = virDomainDefineXML(conn(), key_.c_str());
        break;
    }
    if (dom == nullptr) return Fail(by_ == By::Name || by_ == By::Uuid ? "domain not found: " + key_ : "XML rejected");
    if (!ReadDomain(dom, info_)) Fail("cannot read domain state");
    virDomainFree(dom);
  }
  Napi::Value Result(Napi::Env env) override { return DomInfoToJs(env, info_); }

 private:
  std::string key_;
  By by_;
  DomInfo info_;
};

class ListWorker : public CallWorker {
 public:
  ListWorker(Napi::Env env, virConnectPtr conn) : CallWorker(env, conn) {}

 protected:
  // One RPC for every domain's state where the driver has it; otherwise one per domain.
  void Run() override {
    if (!ListWithStats()) ListOneByOne();
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Array arr = Napi::Array::New(env, list_.size());
    for (size_t i = 0; i < list_.size(); i++) arr.Set(static_cast<uint32_t>(i), DomInfoToJs(env, list_[i]));
    return arr;
  }

 private:
  bool ListWithStats() {
    virDomainStatsRecordPtr* records = nullptr;
    int n = virConnectGetAllDomainStats(conn(), VIR_DOMAIN_STATS_STATE, &records, 0);
    if (n < 0) {
      virErrorPtr err = virGetLastError();
      bool unsupported = err != nullptr && err->code == VIR_ERR_NO_SUPPORT;
      if (!unsupported) Fail("cannot list domains");
      virResetLastError();
      return !unsupported;
    }
    for (int i = 0; i < n; i++) {
      DomInfo info;
      char uuid[VIR_UUID_STRING_BUFLEN];
      int state = 0;
      if (virDomainGetUUIDString(records[i]->dom, uuid) < 0 ||
          virTypedParamsGetInt(records[i]->params, records[i]->nparams, "state.state", &state) != 1) {
        continue;
      }
      const char* name = virDomainGetName(records[i]->dom);
      unsigned int id = virDomainGetID(records[i]->dom);
      info.uuid = uuid;
      info.name = name != nullptr ? name : "";
      info.state = state;
      info.id = id == static_cast<unsigned int>(-1) ? -1 : static_cast<int>(id);
      list_.push_back(std::move(info));
    }
    virDomainStatsRecordListFree(records);
    virResetLastError();
    return true;
  }

  void ListOneByOne() {
    virDomainPtr* doms = nullptr;
    int n = virConnectListAllDomains(conn(), &doms, 0);
    if (n < 0) return Fail("cannot list domains");
    for (int i = 0; i < n; i++) {
      DomInfo info;
      // A domain that vanished between the list and the state query is simply skipped.
      if (ReadDomain(doms[i], info)) list_.push_back(std::move(info));
      virDomainFree(doms[i]);
    }
    virResetLastError();
    free(doms);
  }

  std::vector<DomInfo> list_;
};

class CloseWorker : public CallWorker {
 public:
  CloseWorker(Napi::Env env, StatePtr state) : CallWorker(env, nullptr), state_(std::move(state)) {}

 protected:
  void Run() override { state_->Shutdown(); }

 private:
  StatePtr state_;
};

// ---------------------------------------------------------------------------------------------
// The JS-visible connection object.

struct AddonData {
  Napi::FunctionReference connection_ctor;
  // Set by an environment cleanup hook, which runs before Node finalises wrapped objects.
  std::shared_ptr<std::atomic<bool>> tearing_down = std::make_shared<std::atomic<bool>>(false);
};

class Connection : public Napi::ObjectWrap<Connection> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Connection",
                       {
                           InstanceMethod<&Connection::ListDomains>("listDomains"),
                           InstanceMethod<&Connection::LookupByName>("lookupByName"),
                           InstanceMethod<&Connection::LookupByUuid>("lookupByUuid"),
                           InstanceMethod<&Connection::Destroy>("destroy"),
                           InstanceMethod<&Connection::Create>("create"),
                           InstanceMethod<&Connection::Undefine>("undefine"),
                           InstanceMethod<&Connection::GetXml>("getXml"),
                           InstanceMethod<&Connection::CreateXml>("createXml"),
                           InstanceMethod<&Connection::DefineXml>("defineXml"),
                           InstanceMethod<&Connection::IsAlive>("isAlive"),
                           InstanceMethod<&Connection::Close>("close"),
                       });
  }

  explicit Connection(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Connection>(info) {
    if (info.Length() < 1 || !info[0].IsExternal()) {
      Napi::TypeError::New(info.Env(), "use open() to create a connection").ThrowAsJavaScriptException();
      return;
    }
    auto* holder = info[0].As<Napi::External<StatePtr>>().Data();
    state_ = *holder;
    tearing_down_ = info.Env().GetInstanceData<AddonData>()->tearing_down;
    ++g_live_wrappers;
  }

  ~Connection() override {
    if (!state_) return;
    --g_live_wrappers;
    if (!state_->IsOpen()) return;
    if (*tearing_down_) {
      // The environment is going away: make no libvirt or N-API calls now; the process (or
      // thread) ends and takes the connection with it.
      new StatePtr(std::move(state_));
      return;
    }
    // Collected without close(): release libvirt off the JS thread (it may block on RPC).
    StatePtr state = std::move(state_);
    std::thread([state]() { state->Shutdown(); }).detach();
  }

 private:
  template <typename W, typename... Args>
  Napi::Value Start(const Napi::CallbackInfo& info, Args&&... args) {
    Napi::Env env = info.Env();
    virConnectPtr conn = state_->Acquire();
    if (conn == nullptr) {
      auto deferred = Napi::Promise::Deferred::New(env);
      deferred.Reject(MakeError(env, LvError{kNoConnect, 0, "libvirt connection is closed"}).Value());
      return deferred.Promise();
    }
    auto* worker = new W(env, conn, std::forward<Args>(args)...);
    worker->Hold(info.This().As<Napi::Object>());
    worker->Queue();
    return worker->Promise();
  }

  static std::string StringArg(const Napi::CallbackInfo& info, size_t index, const char* what) {
    if (info.Length() <= index || !info[index].IsString()) {
      throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a string");
    }
    return info[index].As<Napi::String>().Utf8Value();
  }

  Napi::Value ListDomains(const Napi::CallbackInfo& info) { return Start<ListWorker>(info); }
  Napi::Value LookupByName(const Napi::CallbackInfo& info) {
    return Start<LookupWorker>(info, StringArg(info, 0, "name"), LookupWorker::By::Name);
  }
  Napi::Value LookupByUuid(const Napi::CallbackInfo& info) {
    return Start<LookupWorker>(info, StringArg(info, 0, "uuid"), LookupWorker::By::Uuid);
  }
  Napi::Value CreateXml(const Napi::CallbackInfo& info) {
    return Start<LookupWorker>(info, StringArg(info, 0, "xml"), LookupWorker::By::CreateXml);
  }
  Napi::Value DefineXml(const Napi::CallbackInfo& info) {
    return Start<LookupWorker>(info, StringArg(info, 0, "xml"), LookupWorker::By::DefineXml);
  }
  Napi::Value Destroy(const Napi::CallbackInfo& info) { return DomainOp(info, DomainWorker::Op::Destroy); }
  Napi::Value Create(const Napi::CallbackInfo& info) { return DomainOp(info, DomainWorker::Op::Create); }
  Napi::Value Undefine(const Napi::CallbackInfo& info) { return DomainOp(info, DomainWorker::Op::Undefine); }
  Napi::Value GetXml(const Napi::CallbackInfo& info) { return DomainOp(info, DomainWorker::Op::GetXml); }

  Napi::Value DomainOp(const Napi::CallbackInfo& info, DomainWorker::Op op) {
    std::string uuid = StringArg(info, 0, "uuid");
    unsigned int flags = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Uint32Value() : 0;
    return Start<DomainWorker>(info, std::move(uuid), op, flags);
  }

  Napi::Value IsAlive(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), state_->IsAlive()); }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    auto* worker = new CloseWorker(info.Env(), state_);
    worker->Hold(info.This().As<Napi::Object>());
    worker->Queue();
    return worker->Promise();
  }

  StatePtr state_;
  std::shared_ptr<std::atomic<bool>> tearing_down_;
};

// ---------------------------------------------------------------------------------------------
// open(uri | null, { keepaliveInterval, keepaliveCount, onLifecycle, onClose }) -> Promise<Connection>

class OpenWorker : public CallWorker {
 public:
  OpenWorker(Napi::Env env, bool has_uri, std::string uri, int ka_interval, unsigned int ka_count,
             Napi::Value on_lifecycle, Napi::Value on_close)
      : CallWorker(env, nullptr),
        has_uri_(has_uri),
        uri_(std::move(uri)),
        ka_interval_(ka_interval),
        ka_count_(ka_count),
        state_(std::make_shared<ConnState>()) {
    if (on_lifecycle.IsFunction()) {
      event_sink_ = new EventSink{Channel::Create(env, on_lifecycle.As<Napi::Function>(), "virtfence lifecycle")};
    }
    if (on_close.IsFunction()) {
      close_sink_ = new CloseSink();
      close_sink_->channel = Channel::Create(env, on_close.As<Napi::Function>(), "virtfence close");
    }
  }

  ~OpenWorker() override {
    // Sinks not handed over to libvirt/ConnState (failed open) are released here.
    if (event_sink_ != nullptr) FreeEventSink(event_sink_);
    if (close_sink_ != nullptr) {
      close_sink_->channel->Release();
      delete close_sink_;
    }
  }

 protected:
  void Run() override {
    if (!g_event_loop_ok) return Fail("libvirt event loop could not be started");
    virConnectPtr conn = virConnectOpen(has_uri_ ? uri_.c_str() : nullptr);
    if (conn == nullptr) return Fail("cannot open libvirt connection " + uri_);
    // Drivers without keepalive (test:///) refuse it; that is fine.
    if (ka_interval_ > 0 && virConnectSetKeepAlive(conn, ka_interval_, ka_count_) < 0) virResetLastError();
    if (close_sink_ != nullptr && virConnectRegisterCloseCallback(conn, OnConnClose, close_sink_, nullptr) < 0) {
      Fail("cannot register close callback");
      virConnectClose(conn);
      return;
    }
    int event_id = -1;
    if (event_sink_ != nullptr) {
      event_id = virConnectDomainEventRegisterAny(conn, nullptr, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                                  VIR_DOMAIN_EVENT_CALLBACK(OnLifecycle), event_sink_, FreeEventSink);
      if (event_id < 0) {
        Fail("cannot register lifecycle events");
        if (close_sink_ != nullptr) virConnectUnregisterCloseCallback(conn, OnConnClose);
        virConnectClose(conn);
        virResetLastError();
        return;
      }
      event_sink_ = nullptr;  // owned by libvirt now (freed through FreeEventSink)
    }
    state_->Attach(conn, event_id, close_sink_);
    close_sink_ = nullptr;  // owned by the state now
  }

  Napi::Value Result(Napi::Env env) override {
    auto* data = env.GetInstanceData<AddonData>();
    StatePtr holder = state_;
    return data->connection_ctor.New({Napi::External<StatePtr>::New(env, &holder)});
  }

 private:
  bool has_uri_;
  std::string uri_;
  int ka_interval_;
  unsigned int ka_count_;
  StatePtr state_;
  EventSink* event_sink_ = nullptr;
  CloseSink* close_sink_ = nullptr;
};

Napi::Value Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool has_uri = info.Length() > 0 && info[0].IsString();
  if (info.Length() > 0 && !has_uri && !info[0].IsNull() && !info[0].IsUndefined()) {
    throw Napi::TypeError::New(env, "uri must be a string or null");
  }
  std::string uri = has_uri ? info[0].As<Napi::String>().Utf8Value() : std::string();
  int ka_interval = 0;
  unsigned int ka_count = 0;
  Napi::Value on_lifecycle = env.Undefined();
  Napi::Value on_close = env.Undefined();
  if (info.Length() > 1 && info[1].IsObject()) {
    Napi::Object opts = info[1].As<Napi::Object>();
    if (opts.Get("keepaliveInterval").IsNumber()) ka_interval = opts.Get("keepaliveInterval").As<Napi::Number>();
    if (opts.Get("keepaliveCount").IsNumber()) ka_count = opts.Get("keepaliveCount").As<Napi::Number>().Uint32Value();
    on_lifecycle = opts.Get("onLifecycle");
    on_close = opts.Get("onClose");
  }
  auto* worker = new OpenWorker(env, has_uri, std::move(uri), ka_interval, ka_count, on_lifecycle, on_close);
  worker->Queue();
  return worker->Promise();
}

Napi::Value Stats(const Napi::CallbackInfo& info) {
  Napi::Object obj = Napi::Object::New(info.Env());
  obj.Set("wrappers", g_live_wrappers.load());
  obj.Set("states", g_live_states.load());
  return obj;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  EnsureEventLoop();
  auto* data = new AddonData();
  data->connection_ctor = Napi::Persistent(Connection::Define(env));
  env.SetInstanceData(data);
  env.AddCleanupHook([flag = data->tearing_down]() { *flag = true; });
  exports.Set("open", Napi::Function::New(env, Open));
  exports.Set("stats", Napi::Function::New(env, Stats));
  exports.Set("libvirtVersion", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
                unsigned long version = 0;
                virGetVersion(&version, nullptr, nullptr);
                return Napi::Number::New(info.Env(), static_cast<double>(version));
              }));
  return exports;
}

}  // namespace

NODE_API_MODULE(virtfence_libvirt, Init)
