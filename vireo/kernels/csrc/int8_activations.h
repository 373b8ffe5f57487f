// Activations rounded to int8 per block of 32 (llama.cpp's approach for its integer dot products), and
// the AVX2 integer dot product, shared by our int8-activation kernels (cpu_int8dot.cpp, cpu_gguf_dot.cpp).
#pragma once
#include <immintrin.h>
#include <torch/extension.h>

#include "spin_pool.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

namespace vireo_int8x {

constexpr int64_t kGroup = 32;

struct QuantizedX {
  std::vector<int8_t> q;     // [M, K]
  std::vector<float> scale;  // [M, K/32]
  std::vector<float> sum;    // [M, K/32]: float sum of x over the group
  std::vector<float> qsum;   // [M, K/32]: sum of the rounded x (scale * sum of q): offsets' exact term
};

// Rows of x at a time on the pool's threads where there are many (a prefill's activations: ~7 % of its step
// on one thread), each row rounded alone, so the result is the same on any number of threads
constexpr int64_t kRowsPerPart = 16;

inline QuantizedX quantize_rows(const float* x, int64_t m, int64_t k) {
  const int64_t groups = k / kGroup;
  QuantizedX out{std::vector<int8_t>(m * k), std::vector<float>(m * groups), std::vector<float>(m * groups),
                 std::vector<float>(m * groups)};
  vireo_pool::parallel_for(0, m, kRowsPerPart, [&](int64_t first, int64_t last) {
    for (int64_t r = first; r < last; ++r) {
      for (int64_t g = 0; g < groups; ++g) {
        const float* src = x + r * k + g * kGroup;
        float amax = 0.f, sum = 0.f;
        for (int i = 0; i < kGroup; ++i) {
          amax = std::max(amax, std::fabs(src[i]));
          sum += src[i];
        }
        const float scale = amax / 127.f;
        const float inv = scale > 0.f ? 1.f / scale : 0.f;
        int8_t* dst = out.q.data() + r * k + g * kGroup;
        int qsum = 0;
        for (int i = 0; i < kGroup; ++i) {
          dst[i] = static_cast<int8_t>(std::nearbyint(src[i] * inv));
          qsum += dst[i];
        }
        out.scale[r * groups + g] = scale;
        out.sum[r * groups + g] = sum;
        out.qsum[r * groups + g] = scale * static_cast<float>(qsum);
      }
    }
  });
  return out;
}

// Rounded per block of 256 instead (llama.cpp's Q8_K, what its K-quant dot products take): one scale per
// 256 values lets a super-block's sub-blocks accumulate in integers; `bsums` are the integer sums per 16.
struct QuantizedX256 {
  std::vector<int8_t> q;        // [M, K]
  std::vector<float> scale;     // [M, K/256]
  std::vector<int16_t> bsums;   // [M, K/16]
};

// 32 floats times inv rounded to the nearest integer, ties to even (vcvtps2dq in the default rounding mode: what
// std::nearbyint does), as 32 int8 in order; |x * inv| <= 127 here, so the packs never saturate
inline void round_32(const float* src, __m256 inv, int8_t* dst) {
  const __m256i a = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(src), inv));
  const __m256i b = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(src + 8), inv));
  const __m256i c = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(src + 16), inv));
  const __m256i d = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(src + 24), inv));
  // packs work within 128-bit lanes: four-byte runs a0-3 b0-3 c0-3 d0-3 | a4-7 b4-7 c4-7 d4-7, put back in order
  const __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst),
                      _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
}

inline QuantizedX256 quantize_rows_256(const float* x, int64_t m, int64_t k) {
  constexpr int64_t kSuper = 256;
  const int64_t supers = k / kSuper;
  QuantizedX256 out{std::vector<int8_t>(m * k), std::vector<float>(m * supers), std::vector<int16_t>(m * k / 16)};
  const __m256 sign = _mm256_set1_ps(-0.f);
  vireo_pool::parallel_for(0, m, kRowsPerPart, [&](int64_t first, int64_t last) {
    for (int64_t r = first; r < last; ++r) {
      for (int64_t s = 0; s < supers; ++s) {
        const float* src = x + r * k + s * kSuper;
        __m256 amax8 = _mm256_setzero_ps();  // (max is exact: the order of the comparisons does not matter)
        for (int i = 0; i < kSuper; i += 8) amax8 = _mm256_max_ps(amax8, _mm256_andnot_ps(sign, _mm256_loadu_ps(src + i)));
        __m128 amax4 = _mm_max_ps(_mm256_castps256_ps128(amax8), _mm256_extractf128_ps(amax8, 1));
        amax4 = _mm_max_ps(amax4, _mm_movehl_ps(amax4, amax4));
        const float amax = _mm_cvtss_f32(_mm_max_ss(amax4, _mm_movehdup_ps(amax4)));
        const float scale = amax / 127.f;
        const __m256 inv = _mm256_set1_ps(scale > 0.f ? 1.f / scale : 0.f);
        int8_t* dst = out.q.data() + r * k + s * kSuper;
        for (int i = 0; i < kSuper; i += 32) round_32(src + i, inv, dst + i);
        out.scale[r * supers + s] = scale;
        int16_t* bsums = out.bsums.data() + (r * k + s * kSuper) / 16;
        for (int j = 0; j < kSuper / 16; ++j) {  // the sums per 16: bytes widened to int16, pairs added by madd
          const __m256i v = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(dst + 16 * j)));
          const __m256i pairs = _mm256_madd_epi16(v, _mm256_set1_epi16(1));
          const __m128i four = _mm_add_epi32(_mm256_castsi256_si128(pairs), _mm256_extracti128_si256(pairs, 1));
          const __m128i two = _mm_add_epi32(four, _mm_unpackhi_epi64(four, four));
          bsums[j] = static_cast<int16_t>(_mm_cvtsi128_si32(_mm_add_epi32(two, _mm_shuffle_epi32(two, 1))));
        }
      }
    }
  });
  return out;
}

// x [M, K] (any float dtype) rounded per block of 32
inline QuantizedX quantized_input(const torch::Tensor& x, int64_t k) {
  TORCH_CHECK(x.dim() == 2 && x.size(1) == k, "x must be [M, K] with K = ", k);
  TORCH_CHECK(k % kGroup == 0, "K must be a multiple of 32");
  const auto xf = x.to(torch::kFloat32).contiguous();
  return quantize_rows(xf.data_ptr<float>(), xf.size(0), k);
}

// x [M, K] rounded per block of 256
inline QuantizedX256 quantized_input_256(const torch::Tensor& x, int64_t k) {
  TORCH_CHECK(x.dim() == 2 && x.size(1) == k, "x must be [M, K] with K = ", k);
  TORCH_CHECK(k % 256 == 0, "K must be a multiple of 256");
  const auto xf = x.to(torch::kFloat32).contiguous();
  return quantize_rows_256(xf.data_ptr<float>(), xf.size(0), k);
}

// unsigned bytes u times signed bytes s, the 32 products summed in eight int32 lanes, as floats
// (|u| <= 127 keeps a pair's sum within int16)
inline __m256 dot_u8_s8(__m256i u, __m256i s) {
  const __m256i pairs = _mm256_maddubs_epi16(u, s);
  return _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}

inline __m256i load32(const void* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

// the 32 values of 16 packed bytes: byte j holds value j (low nibble) and value j + 16 (high nibble)
inline __m256i unpack_int4(const uint8_t* p) {
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m256i both = _mm256_set_m128i(_mm_srli_epi16(bytes, 4), bytes);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
}

constexpr int kRowBlock = 4;  // rows of x that share one unpacked weight block

// rows of x in blocks of kRowBlock, the tail one at a time: fn(std::integral_constant<int, R>, first row)
template <typename RowFn>
void for_row_blocks(int64_t m, RowFn fn) {
  int64_t r = 0;
  for (; r + kRowBlock <= m; r += kRowBlock) fn(std::integral_constant<int, kRowBlock>{}, r);
  for (; r < m; ++r) fn(std::integral_constant<int, 1>{}, r);
}

}  // namespace vireo_int8x
