// fastivc native addon.
//
// Exports:
//   probe(path?: string): Promise<{device: string, ok: true}>
//     Opens the Xen privcmd device (default /dev/xen/privcmd) read-write and closes it again, on the libuv thread
//     pool. Rejects with an Error carrying `code` (errno name, e.g. "ENOENT"), `errno` (the number), `syscall` and
//     `path`.
//
// Rules (see shared/notes/model-codebases.md 3.2): Execute() never touches JS values; argument errors throw
// synchronously as TypeError; asynchronous errors reject the promise.

#include <napi.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <unistd.h>

namespace {

const char kDefaultPrivcmd[] = "/dev/xen/privcmd";

// Symbolic name of an errno value; falls back to "E<number>" for values not listed.
const char* ErrnoName(int err) {
  switch (err) {
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENODEV: return "ENODEV";
    case ENXIO: return "ENXIO";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case EBUSY: return "EBUSY";
    case EINVAL: return "EINVAL";
    case EIO: return "EIO";
    case ENOMEM: return "ENOMEM";
    case EFAULT: return "EFAULT";
    case EROFS: return "EROFS";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case ELOOP: return "ELOOP";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case EAGAIN: return "EAGAIN";
    case EINTR: return "EINTR";
    case ENOSYS: return "ENOSYS";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case ENOTTY: return "ENOTTY";
    default: return nullptr;
  }
}

std::string ErrnoCode(int err) {
  const char* name = ErrnoName(err);
  return name ? std::string(name) : "E" + std::to_string(err);
}

// Human-readable explanation of why opening the privcmd device failed.
std::string OpenFailureMessage(const std::string& path, int err) {
  switch (err) {
    case ENOENT:
      return "no Xen here: " + path + " does not exist (is this dom0 with xen-privcmd loaded?)";
    case EACCES:
    case EPERM:
      return "permission denied opening " + path + " (run as root in dom0)";
    case ENODEV:
    case ENXIO:
      return "no Xen here: " + path + " exists but no device answers (" + std::strerror(err) +
             "; is this running under Xen?)";
    default:
      return "cannot open " + path + ": " + std::strerror(err);
  }
}

// Creates a JS Error with code/errno/syscall/path properties, in the style of Node's own system errors.
Napi::Error MakeSystemError(Napi::Env env, const std::string& message, int err, const char* syscall,
                            const std::string& path) {
  Napi::Error error = Napi::Error::New(env, message);
  Napi::Object obj = error.Value();
  obj.Set("code", Napi::String::New(env, ErrnoCode(err)));
  obj.Set("errno", Napi::Number::New(env, err));
  obj.Set("syscall", Napi::String::New(env, syscall));
  obj.Set("path", Napi::String::New(env, path));
  return error;
}

class ProbeWorker : public Napi::AsyncWorker {
 public:
  ProbeWorker(Napi::Env env, std::string path)
      : Napi::AsyncWorker(env, "fastivc:probe"), deferred_(Napi::Promise::Deferred::New(env)), path_(std::move(path)) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }

  // Runs on a thread-pool thread: plain C only, no JS values.
  void Execute() override {
    int fd;
    do {
      fd = ::open(path_.c_str(), O_RDWR | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
      err_ = errno;
      SetError(OpenFailureMessage(path_, err_));
      return;
    }
    ::close(fd);
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::Object result = Napi::Object::New(env);
    result.Set("device", Napi::String::New(env, path_));
    result.Set("ok", Napi::Boolean::New(env, true));
    deferred_.Resolve(result);
  }

  void OnError(const Napi::Error& e) override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    std::string message = e.Message();
    deferred_.Reject(MakeSystemError(env, message, err_, "open", path_).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::string path_;
  int err_ = 0;
};

Napi::Value Probe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = kDefaultPrivcmd;
  if (info.Length() > 0 && !info[0].IsUndefined() && !info[0].IsNull()) {
    if (!info[0].IsString()) {
      throw Napi::TypeError::New(env, "probe(path): path must be a string");
    }
    path = info[0].As<Napi::String>().Utf8Value();
    if (path.empty()) {
      throw Napi::TypeError::New(env, "probe(path): path must not be empty");
    }
    if (path.find('\0') != std::string::npos) {
      throw Napi::TypeError::New(env, "probe(path): path must not contain NUL bytes");
    }
  }
  auto* worker = new ProbeWorker(env, path);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("probe", Napi::Function::New(env, Probe, "probe"));
  exports.Set("defaultPrivcmdPath", Napi::String::New(env, kDefaultPrivcmd));
  return exports;
}

}  // namespace

NODE_API_MODULE(fastivc, Init)
