// Our kernels' parallel loop: the one process-wide pool of `cpu_pool.cpp` where the extension was given it
// (`use_pool`, called by cpu_extensions.load), else at::parallel_for.
//
// Why not at::parallel_for alone: its loop is OpenMP, and libgomp counts the process's first thread as one
// of its threads. The engine steps on a thread of its own, so with torch's threads = cores libgomp sees
// more threads than cores and lets a waiting worker spin for only ~1000 rounds before it sleeps in the
// kernel: every parallel loop of a decode step then pays a wake-up (10-20 us on a VM), more than a small
// matmul's whole work (a 1536x576 Q8_0 matmul: 39 us on one thread, 49-56 us on two, 24 us on two
// whose worker spins). The pool's helpers spin between the loops of a step and sleep once idle.
#pragma once

#include <ATen/Parallel.h>

#include <cstdint>

namespace vireo_pool {

using Task = void (*)(void* context, int64_t begin, int64_t end);

// What cpu_pool.cpp hands out (in a capsule named kCapsule): run `task` over [0, n) in parts of at least
// `grain`, on at most at::get_num_threads() threads, the caller's included; returns when all are done.
struct Api {
  void (*run)(int64_t n, int64_t grain, Task task, void* context);
};
constexpr const char* kCapsule = "vireo_cpu_pool.Api";

inline const Api*& shared() {
  static const Api* api = nullptr;  // per extension: set by its use_pool
  return api;
}

template <class F>
void parallel_for(int64_t begin, int64_t end, int64_t grain, const F& f) {
  const Api* api = shared();
  if (api == nullptr) {
    at::parallel_for(begin, end, grain, f);
    return;
  }
  struct Context {
    const F* f;
    int64_t begin;
  } context{&f, begin};
  api->run(
      end - begin, grain,
      [](void* c, int64_t b, int64_t e) {
        const auto* ctx = static_cast<const Context*>(c);
        (*ctx->f)(ctx->begin + b, ctx->begin + e);
      },
      &context);
}

}  // namespace vireo_pool

// In each extension's PYBIND11_MODULE: m.def("use_pool", &vireo_pool_use, ...)
#define VIREO_POOL_BINDING(m)                                                                        \
  m.def(                                                                                             \
      "use_pool",                                                                                    \
      [](pybind11::capsule capsule) {                                                                \
        vireo_pool::shared() = static_cast<const vireo_pool::Api*>(capsule.get_pointer());          \
      },                                                                                             \
      "run this extension's parallel loops on the process's pool (cpu_pool's api())")
