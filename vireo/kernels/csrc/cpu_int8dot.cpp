// Decode-size matmuls on AVX2 with activations rounded to int8 per block of 32 (llama.cpp's approach):
// integer dot products of each block of x with the weight's block, float accumulation of the block
// scales' product. Two weight forms:
//   int4_mm: 4-bit values q in 0..15 per group of 32, w = q * scale + minimum (GGUF Q4_0/Q4_1/Q4_K's
//            form); the minimum term needs only the float sum of x over the group.
//   int8_mm: int8 values, one scale per output channel, w = q * scale.
// Work is split over output channels (spin_pool.h), on as many threads as torch.set_num_threads says.
#include <ATen/Parallel.h>
#include <immintrin.h>
#include <torch/extension.h>

#include "spin_pool.h"

#include "avx2_math.h"
#include "int8_activations.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace {

using vireo_avx2::hsum;
using namespace vireo_int8x;

// the group scales of x times the weight's, for every group of one row: broadcast from memory below
inline void scale_products(const float* xs, const float* ws, int64_t groups, float* d) {
  int64_t g = 0;
  for (; g + 8 <= groups; g += 8) _mm256_storeu_ps(d + g, _mm256_mul_ps(_mm256_loadu_ps(xs + g), _mm256_loadu_ps(ws + g)));
  for (; g < groups; ++g) d[g] = xs[g] * ws[g];
}

// sum over groups of a[g] * b[g]
inline float dot_floats(const float* a, const float* b, int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
  float total = hsum(acc);
  for (; i < n; ++i) total += a[i] * b[i];
  return total;
}

constexpr int64_t kMaxGroups = 1024;  // K up to 32768 on the stack; larger K takes the heap

// One row of x (batch-1 decode): two groups per step into two accumulators, since each group's FMA
// waits on the one before it otherwise; the group scales multiplied once, vectorised.
template <int R>
void int4_rows_single(const QuantizedX& x, int64_t r0, int64_t k, int64_t n, int64_t row, const uint8_t* qrow,
               const float* ws, const float* wmin, float* y) {
  const int64_t groups = k / kGroup;
  float stack_d[R][kMaxGroups];
  std::vector<float> heap_d(groups > kMaxGroups ? R * groups : 0);
  __m256 acc0[R], acc1[R];
  const float* d[R];
  for (int i = 0; i < R; ++i) {
    float* di = groups > kMaxGroups ? heap_d.data() + i * groups : stack_d[i];
    scale_products(x.scale.data() + (r0 + i) * groups, ws, groups, di);
    d[i] = di;
    acc0[i] = _mm256_setzero_ps(), acc1[i] = _mm256_setzero_ps();
  }
  int64_t g = 0;
  for (; g + 2 <= groups; g += 2) {
    const __m256i q0 = unpack_int4(qrow + g * (kGroup / 2));
    const __m256i q1 = unpack_int4(qrow + (g + 1) * (kGroup / 2));
    for (int i = 0; i < R; ++i) {
      const int8_t* xr = x.q.data() + (r0 + i) * k + g * kGroup;
      acc0[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(d[i] + g), dot_u8_s8(q0, load32(xr)), acc0[i]);
      acc1[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(d[i] + g + 1), dot_u8_s8(q1, load32(xr + kGroup)), acc1[i]);
    }
  }
  if (g < groups) {
    const __m256i q0 = unpack_int4(qrow + g * (kGroup / 2));
    for (int i = 0; i < R; ++i) {
      const int8_t* xr = x.q.data() + (r0 + i) * k + g * kGroup;
      acc0[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(d[i] + g), dot_u8_s8(q0, load32(xr)), acc0[i]);
    }
  }
  for (int i = 0; i < R; ++i) {
    const float minimum = dot_floats(wmin, x.sum.data() + (r0 + i) * groups, groups);
    y[(r0 + i) * n + row] = hsum(_mm256_add_ps(acc0[i], acc1[i])) + minimum;
  }
}

template <int R>
void int8_rows_single(const QuantizedX& x, int64_t r0, int64_t k, int64_t n, int64_t row, const int8_t* wrow,
                      float ws, float* y) {
  const int64_t groups = k / kGroup;
  __m256 acc0[R], acc1[R];
  for (int i = 0; i < R; ++i) acc0[i] = _mm256_setzero_ps(), acc1[i] = _mm256_setzero_ps();
  int64_t g = 0;
  for (; g + 2 <= groups; g += 2) {
    const __m256i w0 = load32(wrow + g * kGroup), w1 = load32(wrow + (g + 1) * kGroup);
    const __m256i a0 = _mm256_sign_epi8(w0, w0), a1 = _mm256_sign_epi8(w1, w1);
    for (int i = 0; i < R; ++i) {
      const int64_t r = r0 + i;
      const int8_t* xr = x.q.data() + r * k + g * kGroup;
      // |w| * (x with w's sign): unsigned by signed, as maddubs wants
      acc0[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(&x.scale[r * groups + g]),
                                dot_u8_s8(a0, _mm256_sign_epi8(load32(xr), w0)), acc0[i]);
      acc1[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(&x.scale[r * groups + g + 1]),
                                dot_u8_s8(a1, _mm256_sign_epi8(load32(xr + kGroup), w1)), acc1[i]);
    }
  }
  if (g < groups) {
    const __m256i w0 = load32(wrow + g * kGroup);
    const __m256i a0 = _mm256_sign_epi8(w0, w0);
    for (int i = 0; i < R; ++i) {
      const int64_t r = r0 + i;
      acc0[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(&x.scale[r * groups + g]),
                                dot_u8_s8(a0, _mm256_sign_epi8(load32(x.q.data() + r * k + g * kGroup), w0)),
                                acc0[i]);
    }
  }
  for (int i = 0; i < R; ++i) y[(r0 + i) * n + row] = hsum(_mm256_add_ps(acc0[i], acc1[i])) * ws;
}

// Several rows of x share each unpacked weight group (the loads are the cost there).
template <int R>
void int4_rows_shared(const QuantizedX& x, int64_t r0, int64_t k, int64_t n, int64_t row, const uint8_t* qrow,
               const float* ws, const float* wmin, float* y) {
  const int64_t groups = k / kGroup;
  __m256 acc[R];
  float macc[R];
  for (int i = 0; i < R; ++i) acc[i] = _mm256_setzero_ps(), macc[i] = 0.f;
  for (int64_t g = 0; g < groups; ++g) {
    const __m256i qv = unpack_int4(qrow + g * (kGroup / 2));
    const float s = ws[g], mn = wmin[g];
    for (int i = 0; i < R; ++i) {
      const int64_t r = r0 + i;
      const __m256 d = _mm256_set1_ps(x.scale[r * groups + g] * s);
      acc[i] = _mm256_fmadd_ps(d, dot_u8_s8(qv, load32(x.q.data() + r * k + g * kGroup)), acc[i]);
      macc[i] += mn * x.sum[r * groups + g];
    }
  }
  for (int i = 0; i < R; ++i) y[(r0 + i) * n + row] = hsum(acc[i]) + macc[i];
}

template <int R>
void int8_rows_shared(const QuantizedX& x, int64_t r0, int64_t k, int64_t n, int64_t row, const int8_t* wrow, float ws,
               float* y) {
  const int64_t groups = k / kGroup;
  __m256 acc[R];
  for (int i = 0; i < R; ++i) acc[i] = _mm256_setzero_ps();
  for (int64_t g = 0; g < groups; ++g) {
    const __m256i w = load32(wrow + g * kGroup);
    const __m256i wabs = _mm256_sign_epi8(w, w);
    for (int i = 0; i < R; ++i) {
      const int64_t r = r0 + i;
      // |w| * (x with w's sign): unsigned by signed, as maddubs wants
      const __m256i xs = _mm256_sign_epi8(load32(x.q.data() + r * k + g * kGroup), w);
      acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(x.scale[r * groups + g]), dot_u8_s8(wabs, xs), acc[i]);
    }
  }
  for (int i = 0; i < R; ++i) y[(r0 + i) * n + row] = hsum(acc[i]) * ws;
}

// a block of rows shares the weight loads; a single row takes the two-accumulator loop (against the
// shared loop in one run on a Xeon with AVX-512, 2026-12-05: 1.02-1.6x at one row over SmolLM2's and
// Qwen-1.5B's shapes, 0.8-0.9x at four rows, so blocks keep theirs)
template <int R>
void int4_rows(const QuantizedX& x, int64_t r0, int64_t k, int64_t n, int64_t row, const uint8_t* qrow,
               const float* ws, const float* wmin, float* y) {
  if constexpr (R == 1) {
    int4_rows_single<1>(x, r0, k, n, row, qrow, ws, wmin, y);
  } else {
    int4_rows_shared<R>(x, r0, k, n, row, qrow, ws, wmin, y);
  }
}

template <int R>
void int8_rows(const QuantizedX& x, int64_t r0, int64_t k, int64_t n, int64_t row, const int8_t* wrow, float ws,
               float* y) {
  if constexpr (R == 1) {
    int8_rows_single<1>(x, r0, k, n, row, wrow, ws, y);
  } else {
    int8_rows_shared<R>(x, r0, k, n, row, wrow, ws, y);
  }
}


}  // namespace

// x [M, K]; qpacked uint8 [N, K/2]; scale, minimum float32 [N, K/32]: w = q * scale + minimum.
torch::Tensor int4_mm(torch::Tensor x, torch::Tensor qpacked, torch::Tensor scale, torch::Tensor minimum) {
  const int64_t n = qpacked.size(0), k = qpacked.size(1) * 2, groups = k / kGroup;
  TORCH_CHECK(qpacked.scalar_type() == torch::kUInt8 && qpacked.is_contiguous(), "qpacked: contiguous uint8");
  TORCH_CHECK(scale.scalar_type() == torch::kFloat32 && scale.is_contiguous() && scale.numel() == n * groups,
              "scale: contiguous float32 [N, K/32]");
  TORCH_CHECK(minimum.scalar_type() == torch::kFloat32 && minimum.is_contiguous() && minimum.numel() == n * groups,
              "minimum: contiguous float32 [N, K/32]");
  const QuantizedX xq = quantized_input(x, k);
  const int64_t m = x.size(0);
  auto out = torch::empty({m, n}, torch::kFloat32);
  float* y = out.data_ptr<float>();
  const uint8_t* q = qpacked.data_ptr<uint8_t>();
  const float* ws = scale.data_ptr<float>();
  const float* wmin = minimum.data_ptr<float>();
  vireo_pool::parallel_for(0, n, 16, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      for_row_blocks(m, [&](auto block, int64_t r0) {
        int4_rows<decltype(block)::value>(xq, r0, k, n, row, q + row * (k / 2), ws + row * groups,
                                          wmin + row * groups, y);
      });
    }
  });
  return out;
}

// x [M, K]; qweight int8 [N, K]; scale [N] (any float dtype): w = q * scale.
torch::Tensor int8_mm(torch::Tensor x, torch::Tensor qweight, torch::Tensor scale) {
  const int64_t n = qweight.size(0), k = qweight.size(1);
  TORCH_CHECK(qweight.scalar_type() == torch::kInt8 && qweight.is_contiguous(), "qweight: contiguous int8");
  TORCH_CHECK(scale.numel() == n, "scale: one per output channel");
  const QuantizedX xq = quantized_input(x, k);
  const int64_t m = x.size(0);
  const auto sf = scale.to(torch::kFloat32).contiguous();
  auto out = torch::empty({m, n}, torch::kFloat32);
  float* y = out.data_ptr<float>();
  const int8_t* w = qweight.data_ptr<int8_t>();
  const float* ws = sf.data_ptr<float>();
  vireo_pool::parallel_for(0, n, 64, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      for_row_blocks(m, [&](auto block, int64_t r0) {
        int8_rows<decltype(block)::value>(xq, r0, k, n, row, w + row * k, ws[row], y);
      });
    }
  });
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  VIREO_POOL_BINDING(m);
  m.def("int4_mm", &int4_mm, "x @ W.T, W int4 group-32 (q * scale + minimum), x rounded to int8 (AVX2)");
  m.def("int8_mm", &int8_mm, "x @ W.T, W int8 per output channel, x rounded to int8 (AVX2)");
}
