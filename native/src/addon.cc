// fastivc native addon: the dom0 side of the Domain Event Manager (DEM) hypercall, and a privcmd probe.
//
// Exports (every call validates its arguments synchronously -- TypeError for a wrong type, RangeError for a bad
// value -- then runs on the libuv thread pool and returns a promise; `device` defaults to /dev/xen/privcmd):
//   probe(device?)                        -> {device, ok: true}      open + close, no hypercall
//   info(device?)                         -> DemInfo                 XEN_EVTMGR_OP_info
//   ipSet(addr, domid, device?)           -> undefined               XEN_EVTMGR_OP_ip_set (privileged)
//     (addr everywhere: IPv4 a.b.c.d, strict, or IPv6 as inet_pton(3) reads it; shown as inet_ntop(3) prints it,
//     IPv6 compressed, "[IPv6]:port" in records)
//   ipDel(addr, domid?, device?)          -> undefined               XEN_EVTMGR_OP_ip_del (privileged); domid
//                                                                    undefined/null: whichever domain owns addr
//   ipLookup(addr, device?)               -> number | null           XEN_EVTMGR_OP_ip_lookup; null: not co-resident
//   query(what, device?)                  -> {what, total, entries, counters}
//                                            XEN_EVTMGR_OP_query (privileged), what = 'ip' | 'records'; pages
//                                            through the DEM with its max_batch until start >= total
//   describeError(op, syscall, errno, device, addr?, domid?) -> {code, message}
//                                            the message table below, exported so the mock's parity test can
//                                            check native/lib/mock.ts says the same thing
//   defaultPrivcmdPath, hypercall (43), abiVersion, domidMax (0x7FEF), domidNone
// Rejections are Errors with `code` (errno name), `errno`, `syscall` ('open' | 'ioctl'), `op` (the DEM op name, or
// 'probe') and `path` (the device).
//
// The structure layouts come from the patched Xen tree's public header evtmgr.h and nothing else: binding.gyp
// points the quoted-include path at that tree (variable xen_public, env FASTIVC_XEN_PUBLIC). The hypercall goes
// through Linux's privcmd driver, IOCTL_PRIVCMD_HYPERCALL, as libxencall does; its argument buffer is ordinary
// memory owned by the worker, page aligned, zeroed and mlock()ed for the duration of the call.
//
// Rules (shared/notes/model-codebases.md 3.2): Execute() never touches JS values; argument errors throw
// synchronously; asynchronous errors reject the promise.

#include <napi.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/ioctl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

// Xen's public headers, as Xen's own tools include them. Only quoted includes see that folder (-iquote): it holds
// a features.h and an errno.h that must not shadow libc's.
#define __XEN_TOOLS__ 1
#if defined(__has_include)
#if !__has_include("evtmgr.h")
#error "evtmgr.h not found: build the patched Xen first (./build.sh xen) or set FASTIVC_XEN_PUBLIC to its xen/include/public folder"
#endif
#endif
#include "xen.h"
#include "evtmgr.h"

namespace {

const char kDefaultPrivcmd[] = "/dev/xen/privcmd";

// The DEM's hypercall number. The patched xen.h may name it; then it must agree.
constexpr uint64_t kHypercallEvtmgrOp = 43;
#ifdef __HYPERVISOR_evtmgr_op
static_assert(__HYPERVISOR_evtmgr_op == kHypercallEvtmgrOp, "xen.h and fastivc disagree on the DEM's hypercall number");
#endif

// Linux UAPI include/uapi/xen/privcmd.h (not installed usably: it includes <xen/interface/xen.h>, a kernel-internal
// header). The layout and ioctl number are Linux ABI.
struct PrivcmdHypercall {
  uint64_t op;
  uint64_t arg[5];
};
static_assert(sizeof(PrivcmdHypercall) == 48, "struct privcmd_hypercall is two u64 fields and five u64 args");
constexpr unsigned long kIoctlPrivcmdHypercall = _IOC(_IOC_NONE, 'P', 0, sizeof(PrivcmdHypercall));

constexpr uint16_t kDomidMax = DOMID_FIRST_RESERVED - 1;  // 0x7FEF: highest id of an ordinary domain
// Buffer room per query call: the DEM's max_batch, capped so a bogus value cannot make us allocate much.
constexpr uint32_t kMaxBatchCap = 1024;
// Upper bound on the entries one query() collects (memory bound if the state keeps growing while we page).
constexpr size_t kMaxQueryEntries = 1u << 20;

struct EventBit {
  uint32_t bit;
  const char* name;
};
// Names of the thesis' Table 1 events, by bit; the record's raised[] is indexed by bit position.
const EventBit kEvents[] = {
    {XEN_EVTMGR_EVENT_CREATE_TUNNEL, "CREATE_TUNNEL"},
    {XEN_EVTMGR_EVENT_SEND_CLOSE_TUNNEL, "SEND_CLOSE_TUNNEL"},
    {XEN_EVTMGR_EVENT_REJECT_TUNNEL, "REJECT_TUNNEL"},
    {XEN_EVTMGR_EVENT_RECV_CLOSE_TUNNEL, "RECV_CLOSE_TUNNEL"},
    {XEN_EVTMGR_EVENT_SEND_DATA, "SEND_DATA"},
    {XEN_EVTMGR_EVENT_RECV_GET_DATA, "RECV_GET_DATA"},
};
constexpr size_t kNrEvents = sizeof(kEvents) / sizeof(kEvents[0]);
static_assert(sizeof(xen_evtmgr_record_t{}.raised) / sizeof(uint64_t) == kNrEvents,
              "evtmgr.h has a different number of events than this addon names");

// ---------------------------------------------------------------------------------------------------------------
// errno names and messages

const char* ErrnoName(int err) {
  switch (err) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EINTR: return "EINTR";
    case EIO: return "EIO";
    case ENXIO: return "ENXIO";
    case E2BIG: return "E2BIG";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case ENODEV: return "ENODEV";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case EINVAL: return "EINVAL";
    case ENFILE: return "ENFILE";
    case EMFILE: return "EMFILE";
    case ENOTTY: return "ENOTTY";
    case ENOSPC: return "ENOSPC";
    case EROFS: return "EROFS";
    case ERANGE: return "ERANGE";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ENOSYS: return "ENOSYS";
    case ELOOP: return "ELOOP";
    case EPROTO: return "EPROTO";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    default: return nullptr;
  }
}

std::string ErrnoCode(int err) {
  const char* name = ErrnoName(err);
  return name ? std::string(name) : "E" + std::to_string(err);
}

// What an error means here. `syscall` is "open" (the device) or "ioctl" (the hypercall); `op` the DEM op name;
// addr/domid the op's arguments where it has them (domid < 0: none given).
std::string DescribeError(const std::string& op, const std::string& syscall, int err, const std::string& device,
                          const std::string& addr, long domid) {
  if (syscall == "open") {
    switch (err) {
      case ENOENT:
        return "no Xen here: " + device + " does not exist (run in dom0 with xen-privcmd loaded)";
      case EACCES:
      case EPERM:
        return "permission denied opening " + device + " (run as root in dom0)";
      case ENODEV:
      case ENXIO:
        return "no Xen here: " + device + " exists but no device answers (" + std::strerror(err) +
               "; is this running under Xen?)";
      default:
        return "cannot open " + device + ": " + std::strerror(err);
    }
  }
  switch (err) {
    case EPERM:
      return "the DEM refused: this domain is not privileged (run in dom0)";
    case EOPNOTSUPP:  // == ENOTSUP on Linux
    case ENOSYS:
      return "the hypervisor has no Domain Event Manager (not a fastivc Xen, or booted with evtmgr=0)";
    case ENOTTY:
      return op + ": " + device + " is not a Xen privcmd device (it does not take the hypercall ioctl)";
    case EFAULT:
      return op + ": the hypervisor could not access the argument buffer";
    default:
      break;
  }
  const std::string dom = std::to_string(domid);
  if (op == "ip_set") {
    if (err == ESRCH) return "ip_set: no live domain " + dom;
    if (err == ENOSPC) return "ip_set: domain " + dom + " owns the maximum number of addresses already, or the table is full";
    if (err == EINVAL) return "ip_set: the DEM rejected " + addr + " (not a usable host address)";
  } else if (op == "ip_del") {
    if (err == ENOENT) return "ip_del: " + addr + " is not in the table";
    if (err == ESRCH) return "ip_del: " + addr + " is owned by another domain than " + dom;
  }
  return op + ": " + std::strerror(err) + " (" + ErrnoCode(err) + ")";
}

// An Error with Node-style system-error properties plus the DEM op.
Napi::Error MakeSystemError(Napi::Env env, const std::string& message, int err, const std::string& syscall,
                            const std::string& op, const std::string& device) {
  Napi::Error error = Napi::Error::New(env, message);
  Napi::Object obj = error.Value();
  obj.Set("code", Napi::String::New(env, ErrnoCode(err)));
  obj.Set("errno", Napi::Number::New(env, err));
  obj.Set("syscall", Napi::String::New(env, syscall));
  obj.Set("op", Napi::String::New(env, op));
  obj.Set("path", Napi::String::New(env, device));
  return error;
}

// ---------------------------------------------------------------------------------------------------------------
// addresses

// Strict dotted quad: four decimal parts 0..255, no leading zeros (so "010" is never read as octal), nothing else.
bool ParseIPv4(const std::string& s, uint8_t out[4]) {
  size_t i = 0;
  for (int part = 0; part < 4; part++) {
    if (part > 0) {
      if (i >= s.size() || s[i] != '.') return false;
      i++;
    }
    const size_t start = i;
    unsigned v = 0;
    while (i < s.size() && i - start < 3 && s[i] >= '0' && s[i] <= '9') {
      v = v * 10 + static_cast<unsigned>(s[i] - '0');
      i++;
    }
    const size_t len = i - start;
    if (len == 0 || v > 255 || (len > 1 && s[start] == '0')) return false;
    out[part] = static_cast<uint8_t>(v);
  }
  return i == s.size();
}

// An address of the DEM's ABI: IPv4 (strict dotted quad) in addr[0..3], or IPv6 (anything with a colon, as
// inet_pton(AF_INET6) reads it: no zone, no brackets) in addr[0..15]. What the DEM refuses (0.0.0.0, ::, the
// IPv4-mapped ::ffff:a.b.c.d) is passed on for it to answer EINVAL.
bool ParseAddr(const std::string& s, xen_evtmgr_addr_t* out) {
  std::memset(out, 0, sizeof(*out));
  if (s.find(':') == std::string::npos) {
    out->family = XEN_EVTMGR_AF_INET;
    return ParseIPv4(s, out->addr);
  }
  out->family = XEN_EVTMGR_AF_INET6;
  return s.find('\0') == std::string::npos && inet_pton(AF_INET6, s.c_str(), out->addr) == 1;
}

// IPv4 dotted, IPv6 as inet_ntop prints it (compressed).
std::string FormatAddr(const xen_evtmgr_addr_t& a) {
  char buf[INET6_ADDRSTRLEN];
  if (a.family == XEN_EVTMGR_AF_INET) {
    std::snprintf(buf, sizeof(buf), "%u.%u.%u.%u", a.addr[0], a.addr[1], a.addr[2], a.addr[3]);
    return buf;
  }
  if (a.family == XEN_EVTMGR_AF_INET6 && inet_ntop(AF_INET6, a.addr, buf, sizeof(buf)) != nullptr) return buf;
  return "family" + std::to_string(a.family) + "?";
}

// "a.b.c.d:port", "[IPv6]:port".
std::string FormatEndpoint(const xen_evtmgr_addr_t& a, uint16_t port) {
  const std::string addr = FormatAddr(a);
  return (a.family == XEN_EVTMGR_AF_INET6 ? "[" + addr + "]" : addr) + ":" + std::to_string(port);
}

// ---------------------------------------------------------------------------------------------------------------
// hypercall buffers

// Ordinary user memory for one hypercall argument: page aligned, zeroed, locked while it lives. A PV dom0's
// hypervisor copies through the guest's page tables and cannot fault a page in, so the pages must be present (libxc
// mlock()ed its bounce buffers for the same reason before /dev/xen/hypercall existed). mlock is best effort: root in
// dom0 may lock; if it fails we still try, and a missing page shows up as EFAULT.
class HypercallBuffer {
 public:
  explicit HypercallBuffer(size_t size) {
    const long page = sysconf(_SC_PAGESIZE);
    const size_t align = page > 0 ? static_cast<size_t>(page) : 4096;
    size_ = (std::max<size_t>(size, 1) + align - 1) / align * align;
    void* p = nullptr;
    if (posix_memalign(&p, align, size_) != 0) return;
    data_ = p;
    std::memset(data_, 0, size_);
    locked_ = mlock(data_, size_) == 0;
  }
  ~HypercallBuffer() {
    if (data_ == nullptr) return;
    if (locked_) munlock(data_, size_);
    std::free(data_);
  }
  HypercallBuffer(const HypercallBuffer&) = delete;
  HypercallBuffer& operator=(const HypercallBuffer&) = delete;

  bool ok() const { return data_ != nullptr; }
  size_t size() const { return size_; }
  void Clear() { std::memset(data_, 0, size_); }
  template <typename T>
  T* At(size_t offset = 0) {
    return reinterpret_cast<T*>(static_cast<unsigned char*>(data_) + offset);
  }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
  bool locked_ = false;
};

// ---------------------------------------------------------------------------------------------------------------
// workers

// Opens the device, runs one op's hypercalls, closes it. Subclasses fill Run() (thread pool, no JS) and Result()
// (JS thread).
class DeviceWorker : public Napi::AsyncWorker {
 public:
  Napi::Promise Start() {
    Napi::Promise promise = deferred_.Promise();
    Queue();
    return promise;
  }

 protected:
  DeviceWorker(Napi::Env env, const char* op, std::string device)
      : Napi::AsyncWorker(env, (std::string("fastivc:") + op).c_str()),
        deferred_(Napi::Promise::Deferred::New(env)),
        op_(op),
        device_(std::move(device)) {}

  virtual void Run(int fd) = 0;
  virtual Napi::Value Result(Napi::Env env) = 0;

  void Execute() final {
    int fd;
    do {
      fd = ::open(device_.c_str(), O_RDWR | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
      Fail("open", errno);
      return;
    }
    Run(fd);
    ::close(fd);
  }

  // Records the failure; `message` overrides the table's.
  void Fail(const char* syscall, int err, const std::string& message = std::string()) {
    err_ = err;
    syscall_ = syscall;
    SetError(message.empty() ? DescribeError(op_, syscall_, err, device_, addr_, domid_) : message);
  }

  // One DEM hypercall with `buf` as its argument. False (and the failure recorded) if it fails.
  bool Hypercall(int fd, unsigned int cmd, HypercallBuffer& buf) {
    if (!buf.ok()) {
      Fail("ioctl", ENOMEM);
      return false;
    }
    PrivcmdHypercall call{};
    call.op = kHypercallEvtmgrOp;
    call.arg[0] = cmd;
    call.arg[1] = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(buf.At<void>()));
    // privcmd returns the hypercall's result: >= 0 success, -errno (Xen's errnos are Linux's) on failure.
    if (::ioctl(fd, kIoctlPrivcmdHypercall, &call) < 0) {
      Fail("ioctl", errno);
      return false;
    }
    return true;
  }

  bool GetInfo(int fd, xen_evtmgr_info_t* out) {
    HypercallBuffer buf(sizeof(xen_evtmgr_info_t));
    if (!Hypercall(fd, XEN_EVTMGR_OP_info, buf)) return false;
    std::memcpy(out, buf.At<xen_evtmgr_info_t>(), sizeof(*out));
    return true;
  }

  void OnOK() final {
    Napi::HandleScope scope(Env());
    deferred_.Resolve(Result(Env()));
  }

  void OnError(const Napi::Error& e) final {
    Napi::HandleScope scope(Env());
    deferred_.Reject(MakeSystemError(Env(), e.Message(), err_, syscall_, op_, device_).Value());
  }

  Napi::Promise::Deferred deferred_;
  std::string op_;
  std::string device_;
  std::string addr_;  // argument context for messages
  long domid_ = -1;
  int err_ = 0;
  std::string syscall_ = "open";
};

class ProbeWorker : public DeviceWorker {
 public:
  ProbeWorker(Napi::Env env, std::string device) : DeviceWorker(env, "probe", std::move(device)) {}

 protected:
  void Run(int) override {}
  Napi::Value Result(Napi::Env env) override {
    Napi::Object result = Napi::Object::New(env);
    result.Set("device", Napi::String::New(env, device_));
    result.Set("ok", Napi::Boolean::New(env, true));
    return result;
  }
};

Napi::Object InfoObject(Napi::Env env, const xen_evtmgr_info_t& i) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("abiVersion", Napi::Number::New(env, i.abi_version));
  o.Set("virq", Napi::Number::New(env, i.virq));
  o.Set("maxIpPerDomain", Napi::Number::New(env, i.max_ip_per_domain));
  o.Set("maxRecordsPerDomain", Napi::Number::New(env, i.max_records_per_domain));
  o.Set("maxPendingPerDomain", Napi::Number::New(env, i.max_pending_per_domain));
  o.Set("maxBatch", Napi::Number::New(env, i.max_batch));
  o.Set("domid", Napi::Number::New(env, i.domid));
  return o;
}

class InfoWorker : public DeviceWorker {
 public:
  InfoWorker(Napi::Env env, std::string device) : DeviceWorker(env, "info", std::move(device)) {}

 protected:
  void Run(int fd) override { GetInfo(fd, &info_); }
  Napi::Value Result(Napi::Env env) override { return InfoObject(env, info_); }

 private:
  xen_evtmgr_info_t info_{};
};

// ip_set / ip_del / ip_lookup: one xen_evtmgr_ip_entry_t.
class IpWorker : public DeviceWorker {
 public:
  IpWorker(Napi::Env env, const char* op, unsigned int cmd, const xen_evtmgr_addr_t& ip, long domid,
           std::string device)
      : DeviceWorker(env, op, std::move(device)), cmd_(cmd), ip_(ip) {
    addr_ = FormatAddr(ip);
    domid_ = domid;
  }

 protected:
  void Run(int fd) override {
    HypercallBuffer buf(sizeof(xen_evtmgr_ip_entry_t));
    if (!buf.ok()) {
      Fail("ioctl", ENOMEM);
      return;
    }
    auto* e = buf.At<xen_evtmgr_ip_entry_t>();
    e->addr = ip_;
    if (cmd_ == XEN_EVTMGR_OP_ip_set) {
      e->domid = static_cast<domid_t>(domid_);
    } else if (cmd_ == XEN_EVTMGR_OP_ip_del) {
      e->domid = domid_ < 0 ? static_cast<domid_t>(XEN_EVTMGR_DOMID_NONE) : static_cast<domid_t>(domid_);
    }
    if (!Hypercall(fd, cmd_, buf)) return;
    result_ = buf.At<xen_evtmgr_ip_entry_t>()->domid;
  }

  Napi::Value Result(Napi::Env env) override {
    if (cmd_ != XEN_EVTMGR_OP_ip_lookup) return env.Undefined();
    if (result_ == XEN_EVTMGR_DOMID_NONE) return env.Null();
    return Napi::Number::New(env, result_);
  }

 private:
  unsigned int cmd_;
  xen_evtmgr_addr_t ip_;
  domid_t result_ = 0;
};

Napi::Object CountersObject(Napi::Env env, const xen_evtmgr_counters_t& c) {
  // u64 counters become JS numbers: exact up to 2^53 - 1, which no counter reaches in practice.
  auto n = [&](uint64_t v) { return Napi::Number::New(env, static_cast<double>(v)); };
  Napi::Object o = Napi::Object::New(env);
  o.Set("raises", n(c.raises));
  o.Set("raisesDenied", n(c.raises_denied));
  o.Set("virqs", n(c.virqs));
  o.Set("fetches", n(c.fetches));
  o.Set("eventsDelivered", n(c.events_delivered));
  o.Set("recordsCreated", n(c.records_created));
  o.Set("recordsFreed", n(c.records_freed));
  o.Set("lookups", n(c.lookups));
  o.Set("ipEntries", n(c.ip_entries));
  o.Set("records", n(c.records));
  o.Set("pending", n(c.pending));
  return o;
}

Napi::Object RecordObject(Napi::Env env, const xen_evtmgr_record_t& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("src", Napi::String::New(env, FormatEndpoint(r.conn.src, r.conn.src_port)));
  o.Set("dst", Napi::String::New(env, FormatEndpoint(r.conn.dst, r.conn.dst_port)));
  o.Set("owner", Napi::Number::New(env, r.owner));
  o.Set("raiser", Napi::Number::New(env, r.raiser));
  Napi::Array pending = Napi::Array::New(env);
  Napi::Object raised = Napi::Object::New(env);
  uint32_t k = 0;
  for (const EventBit& ev : kEvents) {
    if (r.pending & ev.bit) pending.Set(k++, Napi::String::New(env, ev.name));
    raised.Set(ev.name, Napi::Number::New(env, static_cast<double>(r.raised[__builtin_ctz(ev.bit)])));
  }
  o.Set("pending", pending);
  o.Set("raised", raised);
  o.Set("fetched", Napi::Number::New(env, static_cast<double>(r.fetched)));
  o.Set("nrChannels", Napi::Number::New(env, r.nr_channels));
  o.Set("channelSize", Napi::Number::New(env, r.channel_size));
  return o;
}

Napi::Object IpEntryObject(Napi::Env env, const xen_evtmgr_ip_entry_t& e) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("addr", Napi::String::New(env, FormatAddr(e.addr)));
  o.Set("domid", Napi::Number::New(env, e.domid));
  return o;
}

class QueryWorker : public DeviceWorker {
 public:
  QueryWorker(Napi::Env env, uint32_t what, std::string device) : DeviceWorker(env, "query", std::move(device)), what_(what) {}

 protected:
  void Run(int fd) override {
    xen_evtmgr_info_t info{};
    if (!GetInfo(fd, &info)) return;
    if (info.abi_version != XEN_EVTMGR_ABI_VERSION) {
      Fail("ioctl", EPROTO,
           "query: the hypervisor's DEM speaks ABI version " + std::to_string(info.abi_version) +
               ", this addon was built for version " + std::to_string(XEN_EVTMGR_ABI_VERSION) +
               " (rebuild it against that Xen's evtmgr.h)");
      return;
    }
    if (info.max_batch == 0) {
      Fail("ioctl", EPROTO, "query: the DEM reports a max_batch of 0");
      return;
    }
    const uint32_t batch = std::min(info.max_batch, kMaxBatchCap);
    if (what_ == XEN_EVTMGR_QUERY_ip) {
      Page(fd, batch, ip_);
    } else {
      Page(fd, batch, records_);
    }
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("what", Napi::String::New(env, what_ == XEN_EVTMGR_QUERY_ip ? "ip" : "records"));
    o.Set("total", Napi::Number::New(env, total_));
    Napi::Array entries = Napi::Array::New(env);
    uint32_t k = 0;
    for (const auto& e : ip_) entries.Set(k++, IpEntryObject(env, e));
    for (const auto& r : records_) entries.Set(k++, RecordObject(env, r));
    o.Set("entries", entries);
    o.Set("counters", CountersObject(env, counters_));
    return o;
  }

 private:
  // Calls XEN_EVTMGR_OP_query with start = 0, nr = batch, then start += nr until start >= total (entries may shift
  // if the state changes between calls; a call that returns nothing ends the walk).
  template <typename Entry>
  void Page(int fd, uint32_t batch, std::vector<Entry>& out) {
    // The entry array starts right after the query header (evtmgr.h: at offset sizeof(xen_evtmgr_query_t)).
    constexpr size_t offset = sizeof(xen_evtmgr_query_t);
    static_assert(offset % alignof(Entry) == 0, "query entries would be misaligned after xen_evtmgr_query_t");
    HypercallBuffer buf(offset + static_cast<size_t>(batch) * sizeof(Entry));
    if (!buf.ok()) {
      Fail("ioctl", ENOMEM);
      return;
    }
    auto* q = buf.At<xen_evtmgr_query_t>();
    uint32_t start = 0;
    for (;;) {
      buf.Clear();
      q->what = what_;
      q->start = start;
      q->nr = batch;
      if (!Hypercall(fd, XEN_EVTMGR_OP_query, buf)) return;
      const uint32_t nr = q->nr;
      total_ = q->total;
      counters_ = q->counters;
      if (nr > batch) {
        Fail("ioctl", EPROTO, "query: the DEM returned " + std::to_string(nr) + " entries for room for " + std::to_string(batch));
        return;
      }
      const Entry* entries = buf.At<const Entry>(offset);
      out.insert(out.end(), entries, entries + nr);
      start += nr;
      if (nr == 0 || start >= total_ || out.size() >= kMaxQueryEntries) return;
    }
  }

  uint32_t what_;
  uint32_t total_ = 0;
  xen_evtmgr_counters_t counters_{};
  std::vector<xen_evtmgr_ip_entry_t> ip_;
  std::vector<xen_evtmgr_record_t> records_;
};

// ---------------------------------------------------------------------------------------------------------------
// argument checks (synchronous)

std::string Quote(const std::string& s) {
  std::string out = s.size() > 64 ? s.substr(0, 64) + "..." : s;
  return "'" + out + "'";
}

std::string DeviceArg(const Napi::CallbackInfo& info, size_t index, const char* fn) {
  Napi::Env env = info.Env();
  if (info.Length() <= index || info[index].IsUndefined() || info[index].IsNull()) return kDefaultPrivcmd;
  if (!info[index].IsString()) throw Napi::TypeError::New(env, std::string(fn) + ": device must be a string");
  std::string device = info[index].As<Napi::String>().Utf8Value();
  if (device.empty()) throw Napi::TypeError::New(env, std::string(fn) + ": device must not be empty");
  if (device.find('\0') != std::string::npos) {
    throw Napi::TypeError::New(env, std::string(fn) + ": device must not contain NUL bytes");
  }
  return device;
}

xen_evtmgr_addr_t AddrArg(const Napi::CallbackInfo& info, size_t index, const char* fn) {
  Napi::Env env = info.Env();
  if (info.Length() <= index || !info[index].IsString()) {
    throw Napi::TypeError::New(env, std::string(fn) + ": addr must be a string");
  }
  const std::string addr = info[index].As<Napi::String>().Utf8Value();
  xen_evtmgr_addr_t out;
  if (!ParseAddr(addr, &out)) {
    throw Napi::RangeError::New(env, std::string(fn) + ": " + Quote(addr) + " is not an IP address (a.b.c.d or IPv6)");
  }
  return out;
}

long DomidArg(const Napi::CallbackInfo& info, size_t index, const char* fn, bool optional) {
  Napi::Env env = info.Env();
  if (optional && (info.Length() <= index || info[index].IsUndefined() || info[index].IsNull())) return -1;
  if (info.Length() <= index || !info[index].IsNumber()) {
    throw Napi::TypeError::New(env, std::string(fn) + ": domid must be a number");
  }
  const double v = info[index].As<Napi::Number>().DoubleValue();
  if (!(v >= 0 && v <= kDomidMax) || v != static_cast<double>(static_cast<long>(v))) {
    throw Napi::RangeError::New(env, std::string(fn) + ": domid must be an integer in 0..32751 (0x7FEF), got " +
                                         info[index].ToString().Utf8Value());
  }
  return static_cast<long>(v);
}

// ---------------------------------------------------------------------------------------------------------------
// exports

Napi::Value Probe(const Napi::CallbackInfo& info) {
  return (new ProbeWorker(info.Env(), DeviceArg(info, 0, "probe")))->Start();
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  return (new InfoWorker(info.Env(), DeviceArg(info, 0, "info")))->Start();
}

Napi::Value IpSet(const Napi::CallbackInfo& info) {
  const xen_evtmgr_addr_t ip = AddrArg(info, 0, "ipSet");
  long domid = DomidArg(info, 1, "ipSet", false);
  std::string device = DeviceArg(info, 2, "ipSet");
  return (new IpWorker(info.Env(), "ip_set", XEN_EVTMGR_OP_ip_set, ip, domid, device))->Start();
}

Napi::Value IpDel(const Napi::CallbackInfo& info) {
  const xen_evtmgr_addr_t ip = AddrArg(info, 0, "ipDel");
  long domid = DomidArg(info, 1, "ipDel", true);
  std::string device = DeviceArg(info, 2, "ipDel");
  return (new IpWorker(info.Env(), "ip_del", XEN_EVTMGR_OP_ip_del, ip, domid, device))->Start();
}

Napi::Value IpLookup(const Napi::CallbackInfo& info) {
  const xen_evtmgr_addr_t ip = AddrArg(info, 0, "ipLookup");
  std::string device = DeviceArg(info, 1, "ipLookup");
  return (new IpWorker(info.Env(), "ip_lookup", XEN_EVTMGR_OP_ip_lookup, ip, -1, device))->Start();
}

Napi::Value Query(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "query: what must be a string");
  const std::string what = info[0].As<Napi::String>().Utf8Value();
  uint32_t code;
  if (what == "ip") {
    code = XEN_EVTMGR_QUERY_ip;
  } else if (what == "records") {
    code = XEN_EVTMGR_QUERY_records;
  } else {
    throw Napi::RangeError::New(env, "query: what must be 'ip' or 'records', got " + Quote(what));
  }
  std::string device = DeviceArg(info, 1, "query");
  return (new QueryWorker(env, code, device))->Start();
}

// describeError(op, syscall, errno, device, addr?, domid?) -> {code, message}
Napi::Value DescribeErrorJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsString() || !info[1].IsString() || !info[2].IsNumber() || !info[3].IsString()) {
    throw Napi::TypeError::New(env, "describeError(op, syscall, errno, device, addr?, domid?)");
  }
  const int err = info[2].As<Napi::Number>().Int32Value();
  std::string addr = info.Length() > 4 && info[4].IsString() ? info[4].As<Napi::String>().Utf8Value() : "";
  long domid = info.Length() > 5 && info[5].IsNumber() ? info[5].As<Napi::Number>().Int32Value() : -1;
  Napi::Object o = Napi::Object::New(env);
  o.Set("code", Napi::String::New(env, ErrnoCode(err)));
  o.Set("message", Napi::String::New(env, DescribeError(info[0].As<Napi::String>().Utf8Value(),
                                                        info[1].As<Napi::String>().Utf8Value(), err,
                                                        info[3].As<Napi::String>().Utf8Value(), addr, domid)));
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("probe", Napi::Function::New(env, Probe, "probe"));
  exports.Set("info", Napi::Function::New(env, Info, "info"));
  exports.Set("ipSet", Napi::Function::New(env, IpSet, "ipSet"));
  exports.Set("ipDel", Napi::Function::New(env, IpDel, "ipDel"));
  exports.Set("ipLookup", Napi::Function::New(env, IpLookup, "ipLookup"));
  exports.Set("query", Napi::Function::New(env, Query, "query"));
  exports.Set("describeError", Napi::Function::New(env, DescribeErrorJs, "describeError"));
  exports.Set("defaultPrivcmdPath", Napi::String::New(env, kDefaultPrivcmd));
  exports.Set("hypercall", Napi::Number::New(env, static_cast<double>(kHypercallEvtmgrOp)));
  exports.Set("abiVersion", Napi::Number::New(env, XEN_EVTMGR_ABI_VERSION));
  exports.Set("domidMax", Napi::Number::New(env, kDomidMax));
  exports.Set("domidNone", Napi::Number::New(env, XEN_EVTMGR_DOMID_NONE));
  return exports;
}

}  // namespace

NODE_API_MODULE(fastivc, Init)
