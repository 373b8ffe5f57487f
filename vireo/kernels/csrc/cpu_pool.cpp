// The process's one pool of helper threads for our kernels' parallel loops (spin_pool.h says why they
// are not OpenMP's). The caller runs the first part itself; helpers, woken by a generation counter, run
// the others. A helper spins after its last part (pausing, then yielding its core to any thread that
// has work, as the caller between loops may) for kSpin, so the loops of one decode step find it awake,
// then sleeps on a condition variable until the next job. One job at a time: a call
// that finds the pool busy (another thread's loop) runs its loop alone. After fork() the child starts a
// pool of its own (its copy of the helpers does not exist).
#include <ATen/Parallel.h>
#include <immintrin.h>
#include <pthread.h>
#include <torch/extension.h>

#include "spin_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kBusySpin = std::chrono::microseconds(50);  // then spin yielding the core to others
constexpr auto kSpin = std::chrono::microseconds(2000);     // then sleep

class Pool {
 public:
  void run(int64_t n, int64_t grain, vireo_pool::Task task, void* context) {
    const int64_t threads = std::min<int64_t>(std::max(1, at::get_num_threads()), kPartMask);
    const int64_t parts = std::min<int64_t>(threads, (n + std::max<int64_t>(grain, 1) - 1) / std::max<int64_t>(grain, 1));
    if (parts <= 1 || !busy_.try_lock()) {
      if (n > 0) task(context, 0, n);
      return;
    }
    grow(static_cast<int>(parts) - 1);
    task_ = task, context_ = context, n_ = n;
    pending_.store(static_cast<int>(parts) - 1, std::memory_order_relaxed);
    // publishes the job: its generation and its number of parts in one word, so a helper decides whether
    // to take part without reading fields that the next job may be writing
    const uint64_t generation = (state_.load(std::memory_order_relaxed) >> kPartBits) + 1;
    state_.store(generation << kPartBits | static_cast<uint64_t>(parts), std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      std::lock_guard<std::mutex> lock(mutex_);
      wake_.notify_all();
    }
    run_part(0, parts);
    for (int spins = 1; pending_.load(std::memory_order_acquire) != 0; ++spins) {
      _mm_pause();
      if (spins % 1024 == 0) std::this_thread::yield();  // a helper that was descheduled gets the core back
    }
    busy_.unlock();
  }

  int helpers() {
    std::lock_guard<std::mutex> lock(busy_);
    return static_cast<int>(helpers_.size());
  }

 private:
  void run_part(int64_t part, int64_t parts) {
    const int64_t begin = n_ * part / parts, end = n_ * (part + 1) / parts;
    if (begin < end) task_(context_, begin, end);
  }

  void grow(int wanted) {  // (before the job is published: a new helper waits for the generation after `seen`)
    const uint64_t seen = state_.load(std::memory_order_acquire) >> kPartBits;
    while (static_cast<int>(helpers_.size()) < wanted) {
      const int index = static_cast<int>(helpers_.size()) + 1;
      helpers_.emplace_back([this, index, seen] { serve(index, seen); });
      helpers_.back().detach();  // the pool lives as long as the process
    }
  }

  void serve(int index, uint64_t seen) {
    for (;;) {
      auto since = Clock::now();
      uint64_t state;
      int spins = 0;
      while (((state = state_.load(std::memory_order_acquire)) >> kPartBits) == seen) {
        _mm_pause();
        if (++spins % 256 != 0) continue;
        const auto waited = Clock::now() - since;
        if (waited > kBusySpin) std::this_thread::yield();  // a thread that has work (the caller) comes first
        if (waited > kSpin) {
          std::unique_lock<std::mutex> lock(mutex_);
          sleepers_.fetch_add(1, std::memory_order_seq_cst);
          wake_.wait(lock, [&] { return (state_.load(std::memory_order_seq_cst) >> kPartBits) != seen; });
          sleepers_.fetch_sub(1, std::memory_order_seq_cst);
          since = Clock::now();
        }
      }
      seen = state >> kPartBits;
      const int64_t parts = static_cast<int64_t>(state & kPartMask);
      // a job that counts on this helper cannot end (nor the next one be written) before its part is done
      if (index < parts) {
        run_part(index, parts);
        pending_.fetch_sub(1, std::memory_order_acq_rel);
      }
    }
  }

  static constexpr int kPartBits = 8;
  static constexpr uint64_t kPartMask = (uint64_t{1} << kPartBits) - 1;

  std::mutex busy_;  // held by the one job running
  std::vector<std::thread> helpers_;
  std::atomic<uint64_t> state_{0};  // generation << kPartBits | parts
  std::atomic<int> pending_{0};
  std::atomic<int> sleepers_{0};
  std::mutex mutex_;
  std::condition_variable wake_;
  vireo_pool::Task task_ = nullptr;
  void* context_ = nullptr;
  int64_t n_ = 0;
};

Pool* the_pool = nullptr;

void start_pool() {
  the_pool = new Pool();  // never freed: helpers may still be spinning at exit
}

void run(int64_t n, int64_t grain, vireo_pool::Task task, void* context) { the_pool->run(n, grain, task, context); }

const vireo_pool::Api kApi{&run};

// Which part each of `tasks` tasks ran in, and on how many distinct threads (a check of the pool).
std::vector<int64_t> parts_of(int64_t tasks, int64_t grain) {
  std::vector<int64_t> owner(tasks, -1);
  std::vector<std::thread::id> ids(tasks);
  vireo_pool::Api const* api = &kApi;
  struct Context {
    std::vector<int64_t>* owner;
    std::vector<std::thread::id>* ids;
  } context{&owner, &ids};
  api->run(
      tasks, grain,
      [](void* c, int64_t begin, int64_t end) {
        auto* ctx = static_cast<Context*>(c);
        for (int64_t i = begin; i < end; ++i) (*ctx->owner)[i] = begin, (*ctx->ids)[i] = std::this_thread::get_id();
      },
      &context);
  std::vector<std::thread::id> distinct;
  for (auto id : ids)
    if (std::find(distinct.begin(), distinct.end(), id) == distinct.end()) distinct.push_back(id);
  owner.push_back(static_cast<int64_t>(distinct.size()));
  return owner;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  start_pool();
  pthread_atfork(nullptr, nullptr, [] { start_pool(); });  // the child's own pool
  m.def("api", [] { return pybind11::capsule(&kApi, vireo_pool::kCapsule); }, "the pool, for use_pool");
  m.def("parts_of", &parts_of,
        "each task's part (its first task) over [0, tasks), then how many threads ran them (a check)");
  m.def("helpers", [] { return the_pool->helpers(); }, "helper threads started so far");
}
