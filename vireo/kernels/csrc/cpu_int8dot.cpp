// Decode-size (M = 1..8) matmul of bf16/float activations with int4 group-32 weights on AVX2:
// activations quantized to int8 per block of 32, integer dot products per (row, group),
// float accumulation of x_scale * w_scale plus zero * sum(x over the group).
#include <torch/extension.h>
#include <immintrin.h>
#include <cmath>
#include <cstdint>

namespace {

constexpr int kGroup = 32;

// x [M, K] float -> xq [M, K] int8, xs [M, K/32] scale, xsum [M, K/32] float sum of x.
void quantize_rows(const float* x, int64_t m, int64_t k, int8_t* xq, float* xs, float* xsum) {
  const int64_t groups = k / kGroup;
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const float* src = x + r * k + g * kGroup;
      float amax = 0.f, sum = 0.f;
      for (int i = 0; i < kGroup; ++i) {
        amax = std::max(amax, std::fabs(src[i]));
        sum += src[i];
      }
      const float scale = amax / 127.f;
      const float inv = scale > 0.f ? 1.f / scale : 0.f;
      int8_t* dst = xq + r * k + g * kGroup;
      for (int i = 0; i < kGroup; ++i) dst[i] = static_cast<int8_t>(std::nearbyint(src[i] * inv));
      xs[r * groups + g] = scale;
      xsum[r * groups + g] = sum;
    }
  }
}

inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v);
  __m128 hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_hadd_ps(lo, lo);
  lo = _mm_hadd_ps(lo, lo);
  return _mm_cvtss_f32(lo);
}

}  // namespace

// qpacked [N, K/2] uint8: byte j of a group holds value j (low nibble) and value j + 16 (high nibble).
// scale, zero [N, K/32] float32: w = (q - 8) * scale + zero.
torch::Tensor int4_mm(torch::Tensor x, torch::Tensor qpacked, torch::Tensor scale, torch::Tensor zero) {
  TORCH_CHECK(x.dim() == 2 && qpacked.dim() == 2, "x [M, K] and qpacked [N, K/2]");
  auto xf = x.to(torch::kFloat32).contiguous();
  const int64_t m = xf.size(0), k = xf.size(1), n = qpacked.size(0), groups = k / kGroup;
  TORCH_CHECK(k % kGroup == 0 && qpacked.size(1) * 2 == k, "K must be a multiple of 32");
  std::vector<int8_t> xq(m * k);
  std::vector<float> xs(m * groups), xsum(m * groups);
  quantize_rows(xf.data_ptr<float>(), m, k, xq.data(), xs.data(), xsum.data());
  auto out = torch::empty({m, n}, torch::kFloat32);
  float* y = out.data_ptr<float>();
  const uint8_t* q = qpacked.data_ptr<uint8_t>();
  const float* ws = scale.data_ptr<float>();
  const float* wz = zero.data_ptr<float>();
  const __m256i low_mask = _mm256_set1_epi8(0x0f);
  const __m256i ones = _mm256_set1_epi16(1);
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < n; ++row) {
    const uint8_t* qrow = q + row * (k / 2);
    for (int64_t r = 0; r < m; ++r) {
      __m256 acc = _mm256_setzero_ps();
      float zacc = 0.f;
      for (int64_t g = 0; g < groups; ++g) {
        const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qrow + g * 16));
        // low nibbles -> values 0..15, high nibbles -> values 16..31 (q unsigned 0..15)
        const __m256i both = _mm256_set_m128i(_mm_srli_epi16(bytes, 4), bytes);
        const __m256i qv = _mm256_and_si256(both, low_mask);
        const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq.data() + r * k + g * kGroup));
        const __m256i prod16 = _mm256_maddubs_epi16(qv, xv);  // unsigned q x signed x, pairs summed
        const __m256i prod32 = _mm256_madd_epi16(prod16, ones);
        const float d = xs[r * groups + g] * ws[row * groups + g];
        // q * s = (q - 8) * s + 8 s: subtract 8 s * sum(xq) via the offset term below
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(prod32), acc);
        zacc += (wz[row * groups + g] - 8.f * ws[row * groups + g]) * xsum[r * groups + g];
      }
      y[r * n + row] = hsum(acc) + zacc;
    }
  }
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.def("int4_mm", &int4_mm, "int4 group-32 x int8 activations (AVX2)"); }
