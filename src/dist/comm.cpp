// The process group of a distributed run (tlc/dist.h): the store, the Gloo or NCCL backend, the collectives
// tlc uses, and what a failed collective says (which rank was lost).
#include "tlc/dist.h"

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <cstdlib>
#include <cstring>
#include <thread>

#include "dist_internal.h"
#include "tlc/device.h"
#include "tlc/util.h"

namespace tlc {

namespace {

std::string first_line(const std::string& s) {
  const auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

std::shared_ptr<Comm>& world_slot() {
  // Never destroyed: at exit a process group may still be tied to threads and sockets of ranks that are
  // gone, and the operating system closes them anyway.
  static auto* slot = new std::shared_ptr<Comm>(std::make_shared<Comm>());
  return *slot;
}

}  // namespace

struct Comm::Impl {
  c10::intrusive_ptr<c10d::Store> store;  // prefixed with this job's attempt
  c10::intrusive_ptr<c10d::Backend> pg;
  std::string backend;
  c10::Device device = c10::Device(c10::kCPU);  // where the backend's tensors live
  std::chrono::milliseconds timeout{0};
  std::string store_addr;
  bool agent_store = false;
  int rollcalls = 0;

  // Which ranks are gone after a collective failed with `err`: every rank that got the failure says so in
  // the store, and the ones that do not within a few seconds are named.
  std::string diagnose(int rank, int world, const std::string& op, const std::string& err) {
    const std::string base = "tlc-rollcall/" + std::to_string(++rollcalls) + "/";
    std::vector<int> missing;
    try {
      store->set(base + std::to_string(rank), std::vector<uint8_t>{1});
      const auto deadline = std::chrono::steady_clock::now() +
                            std::min<std::chrono::milliseconds>(timeout, std::chrono::milliseconds(10000));
      for (;;) {
        missing.clear();
        for (int r = 0; r < world; ++r)
          if (r != rank && !store->check({base + std::to_string(r)})) missing.push_back(r);
        if (missing.empty() || std::chrono::steady_clock::now() > deadline) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    } catch (const std::exception&) {
      if (agent_store)
        return "lost the rendezvous store (torchrun's agent at " + store_addr + ") during " + op + ": " + first_line(err);
      return "lost rank 0 during " + op + " (it also hosts the rendezvous store at " + store_addr + "): " + first_line(err);
    }
    if (missing.empty()) return op + " failed on every rank: " + first_line(err);
    std::string who;
    for (size_t i = 0; i < missing.size(); ++i) who += (i ? ", " : "") + std::to_string(missing[i]);
    return "lost rank " + who + " during " + op + ": it stopped answering (killed, crashed, hung or its machine is "
           "unreachable); the job stops (" + first_line(err) + ")";
  }
};

DistLaunch DistLaunch::from_environment() {
  auto get = [](const char* name) -> const char* {
    const char* v = std::getenv(name);
    return v && *v ? v : nullptr;
  };
  auto integer = [&](const char* name, int fallback) {
    const char* v = get(name);
    if (!v) return fallback;
    char* end = nullptr;
    const long x = std::strtol(v, &end, 10);
    if (*end != '\0' || x < 0 || x > 1'000'000)
      throw Error(std::string("the environment variable ") + name + "=" + v + " is not a non-negative integer");
    return static_cast<int>(x);
  };
  DistLaunch l;
  if (get("RANK") && get("WORLD_SIZE")) {
    l.launcher = "torchrun";
    l.rank = integer("RANK", 0);
    l.world_size = integer("WORLD_SIZE", 1);
    l.local_rank = integer("LOCAL_RANK", 0);
    l.local_world_size = integer("LOCAL_WORLD_SIZE", 1);
  } else if (get("SLURM_PROCID") && integer("SLURM_NTASKS", 1) > 1) {
    l.launcher = "slurm";
    l.rank = integer("SLURM_PROCID", 0);
    l.world_size = integer("SLURM_NTASKS", 1);
    l.local_rank = integer("SLURM_LOCALID", 0);
    // SLURM_NTASKS_PER_NODE when given to sbatch/srun, else the first of SLURM_TASKS_PER_NODE ("4(x2)" -> 4).
    if (const char* per = get("SLURM_NTASKS_PER_NODE"))
      l.local_world_size = std::max(1, std::atoi(per));
    else if (const char* tasks = get("SLURM_TASKS_PER_NODE"))
      l.local_world_size = std::max(1, std::atoi(tasks));
  } else {
    return l;  // a single process, as without any launcher
  }
  l.launched = true;
  if (l.world_size < 1 || l.rank >= l.world_size)
    throw Error("rank " + std::to_string(l.rank) + " is outside a world of " + std::to_string(l.world_size) +
                " (check RANK/WORLD_SIZE or SLURM_PROCID/SLURM_NTASKS)");
  const char* addr = get("MASTER_ADDR");
  const char* port = get("MASTER_PORT");
  if (!addr || !port)
    throw Error(std::string(l.launcher == "slurm" ? "srun started " + std::to_string(l.world_size) + " tasks"
                                                  : "RANK and WORLD_SIZE are set") +
                " but MASTER_ADDR/MASTER_PORT are not: export them (e.g. MASTER_ADDR=$(scontrol show hostnames "
                "\"$SLURM_JOB_NODELIST\" | head -n1) MASTER_PORT=29500), or launch with torchrun");
  l.master_addr = addr;
  l.master_port = integer("MASTER_PORT", 0);
  if (l.master_port < 1 || l.master_port > 65535) throw Error(std::string("MASTER_PORT=") + port + " is not a port number");
  const char* agent = get("TORCHELASTIC_USE_AGENT_STORE");
  l.agent_store = agent && (std::string(agent) == "True" || std::string(agent) == "true" || std::string(agent) == "1");
  l.restart_count = integer("TORCHELASTIC_RESTART_COUNT", 0);
  return l;
}

Comm::Comm() = default;
Comm::~Comm() = default;

std::shared_ptr<Comm> Comm::join(const DistLaunch& l, const std::string& backend, std::chrono::seconds timeout) {
  auto c = std::make_shared<Comm>();
  c->rank_ = l.rank;
  c->world_ = l.world_size;
  c->local_rank_ = l.local_rank;
  c->local_world_ = l.local_world_size;
  auto impl = std::make_unique<Impl>();
  impl->timeout = std::chrono::duration_cast<std::chrono::milliseconds>(timeout);
  impl->store_addr = l.master_addr + ":" + std::to_string(l.master_port);
  impl->agent_store = l.agent_store;
  impl->backend = backend;
  const std::string wait = " within " + std::to_string(timeout.count()) + " s (--dist-timeout)";
  c10::intrusive_ptr<c10d::Store> tcp;
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(l.master_port);
    so.isServer = l.rank == 0 && !l.agent_store;
    so.numWorkers = l.world_size;
    so.waitWorkers = false;
    so.multiTenant = true;
    so.timeout = impl->timeout;
    tcp = c10::make_intrusive<c10d::TCPStore>(l.master_addr, so);
  } catch (const std::exception& e) {
    throw Error("rank " + std::to_string(l.rank) + " could not reach the rendezvous store at " + impl->store_addr +
                wait + ": " + first_line(e.what()) + "; check MASTER_ADDR/MASTER_PORT, that rank 0 (or torchrun) runs, "
                "and that this machine can reach that address");
  }
  impl->store = c10::make_intrusive<c10d::PrefixStore>("tlc/" + std::to_string(l.restart_count), tcp);
  try {
    if (backend == "nccl") {
      impl->device = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(l.local_rank));
      impl->pg = detail::make_nccl_backend(impl->store, l.rank, l.world_size, impl->timeout, l.local_rank);
    } else if (backend == "gloo") {
      auto opts = c10d::ProcessGroupGloo::Options::create(impl->timeout);
      if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
        opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      else if (is_loopback(l.master_addr))  // every rank on this machine
        opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      else
        opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      impl->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, l.rank, l.world_size, opts);
    } else {
      throw Error("unknown distributed backend '" + backend + "' (gloo or nccl)");
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error("rank " + std::to_string(l.rank) + " could not connect to the other " +
                std::to_string(l.world_size - 1) + " rank(s) through " + backend + wait + ": " + first_line(e.what()) +
                "; are all " + std::to_string(l.world_size) + " processes started (with the same WORLD_SIZE)?");
  }
  c->impl_ = std::move(impl);
  return c;
}

std::string Comm::backend() const { return impl_ ? impl_->backend : "none"; }

template <typename Fn>
auto Comm::guarded(const char* what, Fn&& fn) -> decltype(fn()) {
  const auto t0 = std::chrono::steady_clock::now();
  struct Clock {
    double& total;
    std::chrono::steady_clock::time_point t0;
    ~Clock() { total += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); }
  } clock{comm_seconds_, t0};
  try {
    return fn();
  } catch (const RankLost&) {
    throw;
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw RankLost(impl_->diagnose(rank_, world_, what, e.what()));
  }
}

void Comm::allreduce_sum(at::Tensor& t) {
  if (!impl_) return;
  guarded("an all-reduce", [&] {
    std::vector<at::Tensor> v{t.to(impl_->device).contiguous()};
    impl_->pg->allreduce(v)->wait(impl_->timeout);
    if (!v[0].is_same(t)) t.copy_(v[0]);
  });
}

void Comm::broadcast(at::Tensor& t, int root) {
  if (!impl_) return;
  guarded("a broadcast", [&] {
    std::vector<at::Tensor> v{t.to(impl_->device).contiguous()};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    impl_->pg->broadcast(v, o)->wait(impl_->timeout);
    if (!v[0].is_same(t)) t.copy_(v[0]);
  });
}

void Comm::barrier() {
  if (!impl_) return;
  // A barrier is an all-reduce of one number: the same code path as the rest (and NCCL needs no device hint).
  at::Tensor one = at::ones({1}, at::kFloat);
  allreduce_sum(one);
}

bool Comm::all_true(bool v) {
  if (!impl_) return v;
  at::Tensor no = at::full({1}, v ? 0.0f : 1.0f);
  allreduce_sum(no);
  return no.item<float>() == 0.0f;
}

at::Tensor Comm::allgather_rows(const at::Tensor& local) {
  if (!impl_) return local;
  return guarded("an all-gather", [&] {
    auto gather = [&](const at::Tensor& in) {
      std::vector<at::Tensor> input{in};
      std::vector<std::vector<at::Tensor>> out(1);
      for (int r = 0; r < world_; ++r) out[0].push_back(at::empty_like(in));
      impl_->pg->allgather(out, input)->wait(impl_->timeout);
      return out[0];
    };
    at::Tensor rows = at::full({1}, local.size(0), at::TensorOptions().dtype(at::kLong).device(impl_->device));
    std::vector<int64_t> counts;
    for (const at::Tensor& r : gather(rows)) counts.push_back(r.item<int64_t>());
    const int64_t most = *std::max_element(counts.begin(), counts.end());
    std::vector<int64_t> shape = local.sizes().vec();
    shape[0] = most;
    if (most == 0) return at::empty(shape, local.options());
    at::Tensor padded = at::zeros(shape, local.options().device(impl_->device));
    if (local.size(0) > 0) padded.slice(0, 0, local.size(0)).copy_(local);
    std::vector<at::Tensor> parts;
    std::vector<at::Tensor> all = gather(padded);
    for (int r = 0; r < world_; ++r) parts.push_back(all[r].slice(0, 0, counts[r]));
    return at::cat(parts).to(local.device());
  });
}

std::vector<std::string> Comm::allgather_bytes(const std::string& mine) {
  if (!impl_) return {mine};
  at::Tensor t = at::empty({static_cast<int64_t>(mine.size())}, at::kByte);
  std::memcpy(t.data_ptr<uint8_t>(), mine.data(), mine.size());
  // The strings travel as one gather of their bytes, split again by their lengths.
  std::vector<int64_t> len_in{static_cast<int64_t>(mine.size())};
  at::Tensor lens = allgather_rows(at::tensor(len_in, at::kLong)).cpu();
  at::Tensor bytes = allgather_rows(t).cpu();
  std::vector<std::string> out;
  int64_t at_byte = 0;
  for (int r = 0; r < world_; ++r) {
    const int64_t n = lens[r].item<int64_t>();
    out.emplace_back(reinterpret_cast<const char*>(bytes.data_ptr<uint8_t>()) + at_byte, static_cast<size_t>(n));
    at_byte += n;
  }
  return out;
}

#ifndef TLC_WITH_NCCL
namespace detail {
c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>&, int, int,
                                                   std::chrono::milliseconds, int) {
  throw Error("this tlc was built without NCCL (a CUDA build finds nccl.h beside Torch): run the ranks with "
              "--device cpu (Gloo), or rebuild with TLC_WITH_CUDA=ON and the wheel's nvidia-nccl");
}
}  // namespace detail
#endif

void join_world_from_environment(const std::string& device, std::chrono::seconds timeout) {
  const DistLaunch l = DistLaunch::from_environment();
  if (!l.launched || world().joined()) return;
  const bool cuda = resolve_device(device).is_cuda();
  set_world(Comm::join(l, cuda ? "nccl" : "gloo", timeout));
}

Comm& world() { return *world_slot(); }

void set_world(std::shared_ptr<Comm> comm) { world_slot() = comm ? std::move(comm) : std::make_shared<Comm>(); }

std::string rank_prefix() {
  return world().world_size() > 1 ? "rank " + std::to_string(world().rank()) + ": " : "";
}

}  // namespace tlc
