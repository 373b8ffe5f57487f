// The small per-layer operations of a CPU decode step, one call each instead of PyTorch's several
// (at batch 1 a step of SmolLM2 spent ~13 % of its time in these, mostly in dispatch):
//   add_rms_norm: residual += x (in place), returns rms_norm(residual) * weight
//   rms_norm:     rms_norm(x) * weight
//   rope:         rotate-half RoPE in place on the first `heads` heads of each row of a [T, H, D] view
//   silu_mul:     silu(gate) * up for gate_up = [gate | up]
//   store_kv:     a step's keys and values [T, KVH, D] (views into the qkv output) copied to their cache slots
//                 (a float16 cache: rounded to nearest even, as torch's .to(float16))
// float32 rows, AVX2 + FMA; rows split over threads (spin_pool.h) when there are many.
#include <ATen/Parallel.h>
#include <immintrin.h>
#include <torch/extension.h>

#include "spin_pool.h"

#include "avx2_math.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace {

using vireo_avx2::exp8;
using vireo_avx2::hsum;

inline float sum_of_squares(const float* x, int64_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
    acc0 = _mm256_fmadd_ps(a, a, acc0);
    acc1 = _mm256_fmadd_ps(b, b, acc1);
  }
  float total = hsum(_mm256_add_ps(acc0, acc1));
  for (; i < n; ++i) total += x[i] * x[i];
  return total;
}

inline void scale_row(const float* x, const float* w, float inv, float* out, int64_t n) {
  const __m256 s = _mm256_set1_ps(inv);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), s), _mm256_loadu_ps(w + i)));
  for (; i < n; ++i) out[i] = x[i] * inv * w[i];
}

void check_rows(const torch::Tensor& x, const torch::Tensor& weight) {
  TORCH_CHECK(x.scalar_type() == torch::kFloat32 && x.dim() == 2 && x.is_contiguous(), "x: contiguous float32 [T, C]");
  TORCH_CHECK(weight.scalar_type() == torch::kFloat32 && weight.is_contiguous() && weight.numel() == x.size(1),
              "weight: contiguous float32 [C]");
}

constexpr int64_t kRowsPerTask = 16;

}  // namespace

torch::Tensor rms_norm(torch::Tensor x, torch::Tensor weight, double eps) {
  check_rows(x, weight);
  const int64_t rows = x.size(0), n = x.size(1);
  auto out = torch::empty_like(x);
  const float *px = x.data_ptr<float>(), *pw = weight.data_ptr<float>();
  float* po = out.data_ptr<float>();
  vireo_pool::parallel_for(0, rows, kRowsPerTask, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float inv = 1.f / std::sqrt(sum_of_squares(px + r * n, n) / n + static_cast<float>(eps));
      scale_row(px + r * n, pw, inv, po + r * n, n);
    }
  });
  return out;
}

torch::Tensor add_rms_norm(torch::Tensor x, torch::Tensor residual, torch::Tensor weight, double eps) {
  check_rows(x, weight);
  TORCH_CHECK(residual.sizes() == x.sizes() && residual.scalar_type() == torch::kFloat32 && residual.is_contiguous(),
              "residual: contiguous float32 like x");
  const int64_t rows = x.size(0), n = x.size(1);
  auto out = torch::empty_like(x);
  const float *px = x.data_ptr<float>(), *pw = weight.data_ptr<float>();
  float *pr = residual.data_ptr<float>(), *po = out.data_ptr<float>();
  vireo_pool::parallel_for(0, rows, kRowsPerTask, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      float* res = pr + r * n;
      const float* add = px + r * n;
      int64_t i = 0;
      for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(res + i, _mm256_add_ps(_mm256_loadu_ps(res + i), _mm256_loadu_ps(add + i)));
      for (; i < n; ++i) res[i] += add[i];
      const float inv = 1.f / std::sqrt(sum_of_squares(res, n) / n + static_cast<float>(eps));
      scale_row(res, pw, inv, po + r * n, n);
    }
  });
  return out;
}

// x: [T, H', D] view whose last dim is contiguous (heads may be a prefix of a wider row); the first
// `heads` heads rotated at positions[t] with cos/sin tables [P, D/2] (rotate-half form, as HF Llama).
torch::Tensor rope(torch::Tensor x, torch::Tensor positions, torch::Tensor cos, torch::Tensor sin, int64_t heads) {
  TORCH_CHECK(x.scalar_type() == torch::kFloat32 && x.dim() == 3 && x.stride(2) == 1, "x: float32 [T, H, D]");
  TORCH_CHECK(cos.scalar_type() == torch::kFloat32 && sin.scalar_type() == torch::kFloat32 && cos.is_contiguous() &&
                  sin.is_contiguous() && cos.sizes() == sin.sizes(),
              "cos, sin: contiguous float32 [P, D/2]");
  const int64_t tokens = x.size(0), dim = x.size(2), half = dim / 2;
  TORCH_CHECK(cos.size(1) == half && heads <= x.size(1), "cos/sin width must be D/2; heads <= x.size(1)");
  const auto pos = positions.to(torch::kInt64).contiguous();
  const int64_t* pp = pos.data_ptr<int64_t>();
  const int64_t max_position = cos.size(0);
  for (int64_t t = 0; t < tokens; ++t) TORCH_CHECK(pp[t] >= 0 && pp[t] < max_position, "position out of range");
  float* px = x.data_ptr<float>();
  const int64_t row_stride = x.stride(0), head_stride = x.stride(1);
  const float *pc = cos.data_ptr<float>(), *ps = sin.data_ptr<float>();
  vireo_pool::parallel_for(0, tokens, kRowsPerTask, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const float* c = pc + pp[t] * half;
      const float* s = ps + pp[t] * half;
      for (int64_t h = 0; h < heads; ++h) {
        float* a = px + t * row_stride + h * head_stride;  // first half
        float* b = a + half;                               // second half
        int64_t i = 0;
        for (; i + 8 <= half; i += 8) {
          const __m256 va = _mm256_loadu_ps(a + i), vb = _mm256_loadu_ps(b + i);
          const __m256 vc = _mm256_loadu_ps(c + i), vs = _mm256_loadu_ps(s + i);
          _mm256_storeu_ps(a + i, _mm256_fmsub_ps(va, vc, _mm256_mul_ps(vb, vs)));
          _mm256_storeu_ps(b + i, _mm256_fmadd_ps(vb, vc, _mm256_mul_ps(va, vs)));
        }
        for (; i < half; ++i) {
          const float va = a[i], vb = b[i];
          a[i] = va * c[i] - vb * s[i];
          b[i] = vb * c[i] + va * s[i];
        }
      }
    }
  });
  return x;
}

torch::Tensor silu_mul(torch::Tensor gate_up) {
  TORCH_CHECK(gate_up.scalar_type() == torch::kFloat32 && gate_up.dim() == 2 && gate_up.is_contiguous(),
              "gate_up: contiguous float32 [T, 2F]");
  const int64_t rows = gate_up.size(0), width = gate_up.size(1) / 2;
  auto out = torch::empty({rows, width}, gate_up.options());
  const float* pg = gate_up.data_ptr<float>();
  float* po = out.data_ptr<float>();
  vireo_pool::parallel_for(0, rows, kRowsPerTask, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* g = pg + r * 2 * width;
      const float* u = g + width;
      float* o = po + r * width;
      int64_t i = 0;
      const __m256 one = _mm256_set1_ps(1.f), zero = _mm256_setzero_ps();
      for (; i + 8 <= width; i += 8) {
        const __m256 vg = _mm256_loadu_ps(g + i);
        const __m256 e = exp8(_mm256_sub_ps(zero, vg));  // e^-g
        _mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_div_ps(vg, _mm256_add_ps(one, e)), _mm256_loadu_ps(u + i)));
      }
      for (; i < width; ++i) o[i] = g[i] / (1.f + std::exp(-g[i])) * u[i];
    }
  });
  return out;
}

namespace {

// rows [T, KVH, D] of a view whose (KVH, D) part is dense: KVH * D floats per token, one copy each
void check_kv_rows(const torch::Tensor& rows, const torch::Tensor& cache, const char* name) {
  TORCH_CHECK(rows.scalar_type() == torch::kFloat32 && rows.dim() == 3 && rows.stride(2) == 1 &&
                  rows.stride(1) == rows.size(2),
              name, ": float32 [T, KVH, D] with dense heads");
  TORCH_CHECK((cache.scalar_type() == torch::kFloat32 || cache.scalar_type() == torch::kFloat16) &&
                  cache.is_contiguous() && cache.dim() == 4 && cache.size(2) == rows.size(1) &&
                  cache.size(3) == rows.size(2),
              name, " cache: contiguous float32 or float16 [blocks, block_size, KVH, D] of the rows' KVH and D");
}

// n floats to float16, rounded to nearest even (as torch's .to(float16))
inline void to_half(const float* src, at::Half* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; ++i) dst[i] = at::Half(src[i]);
}

template <typename T>
void store_rows(torch::Tensor& cache, const torch::Tensor& rows, const int64_t* slot, int64_t tokens, int64_t width) {
  const float* src = rows.data_ptr<float>();
  T* dst = cache.data_ptr<T>();
  for (int64_t t = 0; t < tokens; ++t) {
    if constexpr (std::is_same_v<T, float>)
      std::memcpy(dst + slot[t] * width, src + t * rows.stride(0), width * sizeof(float));
    else
      to_half(src + t * rows.stride(0), dst + slot[t] * width, width);
  }
}

}  // namespace

void store_kv(torch::Tensor k_cache, torch::Tensor v_cache, torch::Tensor k, torch::Tensor v, torch::Tensor slots) {
  check_kv_rows(k, k_cache, "k");
  check_kv_rows(v, v_cache, "v");
  TORCH_CHECK(k.size(0) == v.size(0) && slots.dim() == 1 && slots.size(0) == k.size(0), "one slot per token");
  const auto slot = slots.to(torch::kInt64).contiguous();
  const int64_t* ps = slot.data_ptr<int64_t>();
  const int64_t tokens = k.size(0), width = k.size(1) * k.size(2);
  const int64_t capacity = k_cache.size(0) * k_cache.size(1);
  for (int64_t t = 0; t < tokens; ++t) TORCH_CHECK(ps[t] >= 0 && ps[t] < capacity, "KV slot out of range");
  TORCH_CHECK(k_cache.scalar_type() == v_cache.scalar_type(), "key and value caches of one dtype");
  if (k_cache.scalar_type() == torch::kFloat32) {
    store_rows<float>(k_cache, k, ps, tokens, width);
    store_rows<float>(v_cache, v, ps, tokens, width);
  } else {
    store_rows<at::Half>(k_cache, k, ps, tokens, width);
    store_rows<at::Half>(v_cache, v, ps, tokens, width);
  }
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  VIREO_POOL_BINDING(m);
  m.def("rms_norm", &rms_norm, "rms_norm(x) * weight, float32 rows");
  m.def("add_rms_norm", &add_rms_norm, "residual += x; rms_norm(residual) * weight");
  m.def("rope", &rope, "rotate-half RoPE in place on the first `heads` heads");
  m.def("silu_mul", &silu_mul, "silu(gate) * up");
  m.def("store_kv", &store_kv, "keys and values [T, KVH, D] copied (float32) or rounded (float16) to their cache slots");
}
