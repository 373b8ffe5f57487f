// Decode-size matmuls straight on a GGUF file's quantized blocks, the bytes llama.cpp itself reads:
// Q4_0, Q4_1, Q5_0, Q8_0 (blocks of 32 values) and Q4_K, Q6_K (super-blocks of 256). Activations are
// rounded to int8 per block of 32 (int8_activations.h); each block of 32 takes one integer dot product
// with the weight's values and one float multiply-add by the product of the two scales. Offsets (Q4_0's
// -8, Q5_0's -16, Q4_1's and Q4_K's minima) multiply the block's sum of the rounded x, Q6_K's -32 enters
// the integer products (its sub-scales are per 16 values). Also each type's de-quantization to float32
// (the prefill path's slices, embedding rows). Work is split over output channels (spin_pool.h).
// The block layouts are GGUF's, as its format describes them (gguf-py's quants.py reads them the same way).
#include <ATen/Parallel.h>
#include <immintrin.h>
#include <torch/extension.h>

#include "spin_pool.h"

#include "avx2_math.h"
#include "int8_activations.h"

#include <atomic>
#include <cstdint>
#include <cstring>

namespace {

using vireo_avx2::hsum;
using namespace vireo_int8x;

inline float half(uint16_t h) { return _cvtsh_ss(h); }

#pragma pack(push, 1)
struct BlockQ4_0 {
  static constexpr int kValues = 32;
  uint16_t d;
  uint8_t qs[16];  // byte j: value j (low nibble), value j + 16 (high); w = d * (q - 8)
};
struct BlockQ4_1 {
  static constexpr int kValues = 32;
  uint16_t d, m;
  uint8_t qs[16];  // as Q4_0; w = d * q + m
};
struct BlockQ5_0 {
  static constexpr int kValues = 32;
  uint16_t d;
  uint8_t qh[4];   // bit j: value j's fifth bit
  uint8_t qs[16];  // low four bits as Q4_0; w = d * (q - 16)
};
struct BlockQ8_0 {
  static constexpr int kValues = 32;
  uint16_t d;
  int8_t qs[32];  // w = d * q
};
struct BlockQ4_K {
  static constexpr int kValues = 256;
  uint16_t d, dmin;
  uint8_t scales[12];  // eight 6-bit sub-scales and eight 6-bit sub-minima, packed
  uint8_t qs[128];     // 32 bytes per 64 values: sub-block 2j in the low nibbles, 2j + 1 in the high
};                     // w = d * sc[b] * q - dmin * m[b], b = the sub-block of 32
struct BlockQ6_K {
  static constexpr int kValues = 256;
  uint8_t ql[128];    // low four bits
  uint8_t qh[64];     // high two bits
  int8_t scales[16];  // one per 16 values
  uint16_t d;         // w = d * scales[i / 16] * (q - 32)
};
#pragma pack(pop)
static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_K) == 144 && sizeof(BlockQ6_K) == 210);

// Q4_K's packed 6-bit sub-scales and sub-minima as bytes: sc[0..3] and m[0..3] are the low six bits of
// bytes 0..3 and 4..7; sc[4..7] and m[4..7] take their low four bits from bytes 8..11 (low, high nibble)
// and their top two from the top bits of bytes 0..3 and 4..7.
inline void q4k_scales(const uint8_t* packed, uint8_t sc[8], uint8_t mn[8]) {
  uint32_t u[3];
  std::memcpy(u, packed, 12);
  const uint32_t low6 = 0x3f3f3f3f, low4 = 0x0f0f0f0f, low2 = 0x03030303;
  const uint32_t out[4] = {u[0] & low6, (u[2] & low4) | (((u[0] >> 6) & low2) << 4), u[1] & low6,
                           ((u[2] >> 4) & low4) | (((u[1] >> 6) & low2) << 4)};
  std::memcpy(sc, out, 8);
  std::memcpy(mn, out + 2, 8);
}

// 0xff in byte j where bit j of `bits` is set, else 0
inline __m256i bits_to_bytes(uint32_t bits) {
  const __m256i spread = _mm256_shuffle_epi8(
      _mm256_set1_epi32(static_cast<int>(bits)),
      _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303));
  const __m256i select = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ULL));
  return _mm256_cmpeq_epi8(_mm256_and_si256(spread, select), select);
}

inline __m256 eight_bytes_as_floats(const uint8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}

// R rows of rounded x; v is a value index along K
template <int R>
struct Rows {
  const QuantizedX& x;
  int64_t r0, k, groups;
  const int8_t* q(int i, int64_t v) const { return x.q.data() + (r0 + i) * k + v; }
  const float* scale(int i, int64_t v) const { return x.scale.data() + (r0 + i) * groups + v / kGroup; }
  const float* qsum(int i, int64_t v) const { return x.qsum.data() + (r0 + i) * groups + v / kGroup; }
};

// per row: two vector accumulators (so consecutive blocks' multiply-adds need not wait on each other)
// and a scalar one for the offsets
template <int R>
struct Acc {
  __m256 v[R][2];
  float offset[R][2];
  Acc() {
    for (int i = 0; i < R; ++i) v[i][0] = v[i][1] = _mm256_setzero_ps(), offset[i][0] = offset[i][1] = 0.f;
  }
  float total(int i) const { return hsum(_mm256_add_ps(v[i][0], v[i][1])) + offset[i][0] + offset[i][1]; }
};

// A block of 32 unsigned values u (w = d * u + c): the integer dot product, and c times the block's
// sum of rounded x.
template <int L, int R>
inline void add_unsigned32(__m256i u, float d, float c, const Rows<R>& x, int64_t v0, Acc<R>& acc) {
  for (int i = 0; i < R; ++i) {
    const float xs = *x.scale(i, v0);
    acc.v[i][L] = _mm256_fmadd_ps(_mm256_set1_ps(d * xs), dot_u8_s8(u, load32(x.q(i, v0))), acc.v[i][L]);
    acc.offset[i][L] += c * *x.qsum(i, v0);
  }
}

template <int L, int R>
inline void add_block(const BlockQ4_0& b, const Rows<R>& x, int64_t v0, Acc<R>& acc) {
  const float d = half(b.d);
  add_unsigned32<L>(unpack_int4(b.qs), d, -8.f * d, x, v0, acc);
}

template <int L, int R>
inline void add_block(const BlockQ4_1& b, const Rows<R>& x, int64_t v0, Acc<R>& acc) {
  add_unsigned32<L>(unpack_int4(b.qs), half(b.d), half(b.m), x, v0, acc);
}

// signed weights w (|w| <= 127) times x: |w| * (x with w's sign), unsigned by signed as maddubs wants
template <int L, int R>
inline void add_signed32(__m256i w, float d, const Rows<R>& x, int64_t v0, Acc<R>& acc) {
  const __m256i magnitude = _mm256_sign_epi8(w, w);
  for (int i = 0; i < R; ++i) {
    const __m256 dot = dot_u8_s8(magnitude, _mm256_sign_epi8(load32(x.q(i, v0)), w));
    acc.v[i][L] = _mm256_fmadd_ps(_mm256_set1_ps(d * *x.scale(i, v0)), dot, acc.v[i][L]);
  }
}

template <int L, int R>
inline void add_block(const BlockQ5_0& b, const Rows<R>& x, int64_t v0, Acc<R>& acc) {
  uint32_t high;
  std::memcpy(&high, b.qh, 4);
  // q - 16 as a signed byte straight away: the low four bits, and 0xf0 (-16) where the fifth bit is clear
  const __m256i w = _mm256_or_si256(unpack_int4(b.qs), _mm256_andnot_si256(bits_to_bytes(high), _mm256_set1_epi8(-16)));
  add_signed32<L>(w, half(b.d), x, v0, acc);
}

template <int L, int R>
inline void add_block(const BlockQ8_0& b, const Rows<R>& x, int64_t v0, Acc<R>& acc) {
  add_signed32<L>(load32(b.qs), half(b.d), x, v0, acc);
}

// R rows of x rounded per 256 (the K-quants' activations); v is a value index along K, a multiple of 256
template <int R>
struct Rows256 {
  const QuantizedX256& x;
  int64_t r0, k;
  const int8_t* q(int i, int64_t v) const { return x.q.data() + (r0 + i) * k + v; }
  float scale(int i, int64_t v) const { return x.scale[((r0 + i) * k + v) / 256]; }
  __m256i bsums(int i, int64_t v) const { return load32(x.bsums.data() + ((r0 + i) * k + v) / 16); }
};

// _mm256_shuffle_epi8 masks over eight int16 held in both 128-bit lanes, built once: same[e] repeats
// element e in both lanes (a Q4_K sub-block's scale over its 32 values), pair[t] element 2t in lane 0
// and 2t + 1 in lane 1 (a Q6_K 32-value chunk's two sub-scales, one per 16 values)
struct PickMasks {
  alignas(32) int8_t same[8][32];
  alignas(32) int8_t pair[4][32];
  PickMasks() {
    for (int e = 0; e < 8; ++e)
      for (int byte = 0; byte < 32; ++byte) same[e][byte] = static_cast<int8_t>(2 * e + byte % 2);
    for (int t = 0; t < 4; ++t)
      for (int byte = 0; byte < 32; ++byte) pair[t][byte] = static_cast<int8_t>(2 * (2 * t + byte / 16) + byte % 2);
  }
};
const PickMasks kPick;

// Q4_K: the sub-blocks' products times their 6-bit scales add up in int32 over the super-block; one
// float multiply-add per super-block, and the minima against the integer sums of x
template <int L, int R>
inline void add_block(const BlockQ4_K& b, const Rows256<R>& x, int64_t v0, Acc<R>& acc) {
  alignas(8) uint8_t sc[8], mn[8];
  q4k_scales(b.scales, sc, mn);
  // the eight scales as int16 in both 128-bit lanes (kPick.same broadcasts one)
  const __m256i scales = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(sc))));
  // each minimum twice (the sums of x are per 16)
  const __m128i m8 = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(mn)));
  const __m256i mins = _mm256_set_m128i(_mm_unpackhi_epi16(m8, m8), _mm_unpacklo_epi16(m8, m8));
  const float d = half(b.d), dmin = half(b.dmin);
  __m256i isum[R];
  for (int i = 0; i < R; ++i) isum[i] = _mm256_setzero_si256();
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  for (int j = 0; j < 4; ++j) {
    const __m256i sc_lo = _mm256_shuffle_epi8(scales, load32(kPick.same[2 * j]));
    const __m256i sc_hi = _mm256_shuffle_epi8(scales, load32(kPick.same[2 * j + 1]));
    const __m256i bytes = load32(b.qs + 32 * j);
    const __m256i lo = _mm256_and_si256(bytes, low4), hi = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low4);
    for (int i = 0; i < R; ++i) {
      const int8_t* xq = x.q(i, v0 + 64 * j);
      const __m256i p_lo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, load32(xq)), sc_lo);
      const __m256i p_hi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, load32(xq + 32)), sc_hi);
      isum[i] = _mm256_add_epi32(isum[i], _mm256_add_epi32(p_lo, p_hi));
    }
  }
  for (int i = 0; i < R; ++i) {
    const float xs = x.scale(i, v0);
    const __m256i msum = _mm256_madd_epi16(mins, x.bsums(i, v0));
    acc.v[i][0] = _mm256_fmadd_ps(_mm256_set1_ps(d * xs), _mm256_cvtepi32_ps(isum[i]), acc.v[i][0]);
    acc.v[i][1] = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * xs), _mm256_cvtepi32_ps(msum), acc.v[i][1]);
  }
}

// Q6_K: (q - 32) * x as q * x minus 32 times the sums of x, every product times its int8 sub-scale in int32
template <int L, int R>
inline void add_block(const BlockQ6_K& b, const Rows256<R>& x, int64_t v0, Acc<R>& acc) {
  const float d = half(b.d);
  const __m128i scale_bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales));
  const __m256i scales16 = _mm256_cvtepi8_epi16(scale_bytes);  // the sixteen sub-scales, one per 16 values
  const __m256i low4 = _mm256_set1_epi8(0x0f), low2 = _mm256_set1_epi8(3);
  __m256i isum[R];
  for (int i = 0; i < R; ++i) isum[i] = _mm256_setzero_si256();
  for (int h = 0; h < 2; ++h) {  // two halves of 128 values
    const __m256i half_scales = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(h ? _mm_srli_si128(scale_bytes, 8) : scale_bytes));
    const __m256i ql0 = load32(b.ql + 64 * h), ql1 = load32(b.ql + 64 * h + 32), qh = load32(b.qh + 32 * h);
    const __m256i u[4] = {
        _mm256_or_si256(_mm256_and_si256(ql0, low4), _mm256_slli_epi16(_mm256_and_si256(qh, low2), 4)),
        _mm256_or_si256(_mm256_and_si256(ql1, low4),
                        _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), low2), 4)),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4),
                        _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), low2), 4)),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                        _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), low2), 4)),
    };
    for (int t = 0; t < 4; ++t) {  // values 128h + 32t .. +31: sub-scales 8h + 2t (first 16), 8h + 2t + 1
      const __m256i scales = _mm256_shuffle_epi8(half_scales, load32(kPick.pair[t]));
      for (int i = 0; i < R; ++i) {
        const __m256i xq = load32(x.q(i, v0 + 128 * h + 32 * t));
        isum[i] = _mm256_add_epi32(isum[i], _mm256_madd_epi16(_mm256_maddubs_epi16(u[t], xq), scales));
      }
    }
  }
  for (int i = 0; i < R; ++i) {
    const __m256i offset = _mm256_slli_epi32(_mm256_madd_epi16(scales16, x.bsums(i, v0)), 5);  // 32 * sc * sum
    acc.v[i][L] = _mm256_fmadd_ps(_mm256_set1_ps(d * x.scale(i, v0)),
                                           _mm256_cvtepi32_ps(_mm256_sub_epi32(isum[i], offset)), acc.v[i][L]);
  }
}

// ---- de-quantization: one block's values as floats ----
inline void dequantize_block(const BlockQ4_0& b, float* y) {
  const float d = half(b.d);
  for (int j = 0; j < 16; ++j) y[j] = d * ((b.qs[j] & 0xf) - 8), y[j + 16] = d * ((b.qs[j] >> 4) - 8);
}
inline void dequantize_block(const BlockQ4_1& b, float* y) {
  const float d = half(b.d), m = half(b.m);
  for (int j = 0; j < 16; ++j) y[j] = d * (b.qs[j] & 0xf) + m, y[j + 16] = d * (b.qs[j] >> 4) + m;
}
inline void dequantize_block(const BlockQ5_0& b, float* y) {
  const float d = half(b.d);
  uint32_t high;
  std::memcpy(&high, b.qh, 4);
  for (int j = 0; j < 16; ++j) {
    y[j] = d * (static_cast<int>((b.qs[j] & 0xf) | (((high >> j) & 1) << 4)) - 16);
    y[j + 16] = d * (static_cast<int>((b.qs[j] >> 4) | (((high >> (j + 16)) & 1) << 4)) - 16);
  }
}
inline void dequantize_block(const BlockQ8_0& b, float* y) {
  const float d = half(b.d);
  for (int j = 0; j < 32; ++j) y[j] = d * b.qs[j];
}
inline void dequantize_block(const BlockQ4_K& b, float* y) {
  uint8_t sc[8], mn[8];
  q4k_scales(b.scales, sc, mn);
  const float d = half(b.d), dmin = half(b.dmin);
  for (int j = 0; j < 4; ++j) {
    const float d0 = d * sc[2 * j], m0 = dmin * mn[2 * j], d1 = d * sc[2 * j + 1], m1 = dmin * mn[2 * j + 1];
    for (int l = 0; l < 32; ++l) {
      y[64 * j + l] = d0 * (b.qs[32 * j + l] & 0xf) - m0;
      y[64 * j + 32 + l] = d1 * (b.qs[32 * j + l] >> 4) - m1;
    }
  }
}
inline void dequantize_block(const BlockQ6_K& b, float* y) {
  const float d = half(b.d);
  for (int h = 0; h < 2; ++h) {
    const uint8_t *ql = b.ql + 64 * h, *qh = b.qh + 32 * h;
    const int8_t* sc = b.scales + 8 * h;
    float* out = y + 128 * h;
    for (int l = 0; l < 32; ++l) {
      const int s = l / 16;
      out[l] = d * sc[s] * (((ql[l] & 0xf) | ((qh[l] & 3) << 4)) - 32);
      out[l + 32] = d * sc[s + 2] * (((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32);
      out[l + 64] = d * sc[s + 4] * (((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
      out[l + 96] = d * sc[s + 6] * (((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
    }
  }
}

// ---- whole matrices ----
template <class Block>
void check_blocks(const torch::Tensor& blocks, int64_t k) {
  TORCH_CHECK(blocks.scalar_type() == torch::kUInt8 && blocks.dim() == 2 && blocks.is_contiguous(),
              "blocks: contiguous uint8 [N, bytes per row]");
  TORCH_CHECK(k % Block::kValues == 0, "K (", k, ") is not a multiple of the block's ", Block::kValues, " values");
  TORCH_CHECK(blocks.size(1) == k / Block::kValues * static_cast<int64_t>(sizeof(Block)), "a row of ", k,
              " values takes ", k / Block::kValues * sizeof(Block), " bytes of this type, not ", blocks.size(1));
}

template <class Block>
torch::Tensor matmul(const torch::Tensor& x, const torch::Tensor& blocks, int64_t k) {
  check_blocks<Block>(blocks, k);
  constexpr bool kSuper = Block::kValues == 256;  // K-quants take x rounded per 256, the others per 32
  using Activations = std::conditional_t<kSuper, QuantizedX256, QuantizedX>;
  const Activations xq = [&] {
    if constexpr (kSuper) return quantized_input_256(x, k);
    else return quantized_input(x, k);
  }();
  const int64_t m = x.size(0), n = blocks.size(0), nblocks = k / Block::kValues;
  auto out = torch::empty({m, n}, torch::kFloat32);
  float* y = out.data_ptr<float>();
  const Block* w = reinterpret_cast<const Block*>(blocks.data_ptr<uint8_t>());
  vireo_pool::parallel_for(0, n, 16, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const Block* wrow = w + row * nblocks;
      for_row_blocks(m, [&](auto block, int64_t r0) {
        constexpr int R = decltype(block)::value;
        using RowsR = std::conditional_t<kSuper, Rows256<R>, Rows<R>>;
        const RowsR rows = [&] {
          if constexpr (kSuper) return RowsR{xq, r0, k};
          else return RowsR{xq, r0, k, k / kGroup};
        }();
        Acc<R> acc;
        // two blocks a step, each into an accumulator of its own (named at compile time: registers)
        int64_t j = 0;
        for (; j + 2 <= nblocks; j += 2) {
          add_block<0, R>(wrow[j], rows, j * Block::kValues, acc);
          add_block<1, R>(wrow[j + 1], rows, (j + 1) * Block::kValues, acc);
        }
        if (j < nblocks) add_block<0, R>(wrow[j], rows, j * Block::kValues, acc);
        for (int i = 0; i < R; ++i) y[(r0 + i) * n + row] = acc.total(i);
      });
    }
  });
  return out;
}

// W as float32, or rounded (to nearest even) to bfloat16: the prefill's GEMM operand where bfloat16 GEMMs
// are native, half the bytes to write
template <class Block>
torch::Tensor dequantize(const torch::Tensor& blocks, int64_t k, bool bfloat16) {
  check_blocks<Block>(blocks, k);
  const int64_t n = blocks.size(0), nblocks = k / Block::kValues;
  auto out = torch::empty({n, k}, bfloat16 ? torch::kBFloat16 : torch::kFloat32);
  const Block* w = reinterpret_cast<const Block*>(blocks.data_ptr<uint8_t>());
  if (!bfloat16) {
    float* y = out.data_ptr<float>();
    vireo_pool::parallel_for(0, n, 16, [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row)
        for (int64_t j = 0; j < nblocks; ++j) dequantize_block(w[row * nblocks + j], y + row * k + j * Block::kValues);
    });
    return out;
  }
  at::BFloat16* y = out.data_ptr<at::BFloat16>();
  vireo_pool::parallel_for(0, n, 16, [&](int64_t begin, int64_t end) {
    float values[Block::kValues];
    for (int64_t row = begin; row < end; ++row)
      for (int64_t j = 0; j < nblocks; ++j) {
        dequantize_block(w[row * nblocks + j], values);
        at::BFloat16* dst = y + row * k + j * Block::kValues;
        for (int v = 0; v < Block::kValues; ++v) dst[v] = at::BFloat16(values[v]);
      }
  });
  return out;
}

// GGML's type numbers
enum BlockType : int64_t { kQ4_0 = 2, kQ4_1 = 3, kQ5_0 = 6, kQ8_0 = 8, kQ4_K = 12, kQ6_K = 14 };

template <typename Fn>
torch::Tensor by_type(int64_t type, Fn fn) {
  switch (type) {
    case kQ4_0: return fn(BlockQ4_0{});
    case kQ4_1: return fn(BlockQ4_1{});
    case kQ5_0: return fn(BlockQ5_0{});
    case kQ8_0: return fn(BlockQ8_0{});
    case kQ4_K: return fn(BlockQ4_K{});
    case kQ6_K: return fn(BlockQ6_K{});
  }
  TORCH_CHECK(false, "GGML block type ", type, " has no kernel here");
}

}  // namespace

// x [M, K] @ W.T -> float32 [M, N]; W: rows of GGML blocks of `type`, uint8 [N, bytes per row]
torch::Tensor gguf_mm(torch::Tensor x, torch::Tensor blocks, int64_t type, int64_t k) {
  return by_type(type, [&](auto block) { return matmul<decltype(block)>(x, blocks, k); });
}

// W as float32 (or bfloat16) [N, K]
torch::Tensor gguf_dequantize(torch::Tensor blocks, int64_t type, int64_t k, bool bfloat16) {
  return by_type(type, [&](auto block) { return dequantize<decltype(block)>(blocks, k, bfloat16); });
}

// How many threads at::parallel_for ran `tasks` tasks on: its loop is inline OpenMP, which a build without
// -fopenmp silently runs on one thread (cpu_extensions.FLAGS; tests/kernels/test_cpu_gguf_dot.py)
int64_t threads_used(int64_t tasks) {
  std::atomic<uint64_t> seen{0};
  at::parallel_for(0, tasks, 1, [&](int64_t, int64_t) { seen |= uint64_t{1} << (at::get_thread_num() % 64); });
  return __builtin_popcountll(seen.load());
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  VIREO_POOL_BINDING(m);
  m.def("gguf_mm", &gguf_mm, "x @ W.T, W in GGML blocks (Q4_0/Q4_1/Q5_0/Q8_0/Q4_K/Q6_K), x rounded to int8 (AVX2)");
  m.def("gguf_dequantize", &gguf_dequantize, "GGML blocks as float32 [N, K], or rounded to bfloat16",
        pybind11::arg("blocks"), pybind11::arg("type"), pybind11::arg("k"), pybind11::arg("bfloat16") = false);
  m.def("threads_used", &threads_used, "threads at::parallel_for ran `tasks` tasks on");
}
