// Matmuls straight on a GGUF file's quantized blocks, the bytes llama.cpp itself reads:
// Q4_0, Q4_1, Q5_0, Q8_0 (blocks of 32 values) and Q4_K, Q6_K (super-blocks of 256). Activations are
// rounded to int8 per block of 32 (int8_activations.h); each block of 32 takes one integer dot product
// with the weight's values and one float multiply-add by the product of the two scales. Offsets (Q4_0's
// -8, Q5_0's -16, Q4_1's and Q4_K's minima) multiply the block's sum of the rounded x, Q6_K's -32 enters
// the integer products (its sub-scales are per 16 values). The dot products (gguf_dot_body.h) are compiled
// for AVX2 and for AVX-512 VNNI, the latter run where the CPU has it (checked once, at run time: the
// machines we run on differ). Also each type's de-quantization to float32 (the prefill path's slices,
// embedding rows). Work is split over output channels (spin_pool.h).
// The block layouts are GGUF's, as its format describes them (gguf-py's quants.py reads them the same way),
// and ours, made once at load (`gguf_regroup`): Q4_K and Q6_K regrouped row by row so that wide registers read
// them whole, and every type but Q4_0 with sixteen rows interleaved (where N is a multiple of 16: what the engine
// holds), whose dot products keep sixteen rows in the lanes of a register and unpack each weight once for every
// row of x - fast enough at prefill sizes too (`CpuGgufWeight.dense_from_rows`).
#include <ATen/Parallel.h>
#include <immintrin.h>
#include <torch/extension.h>

#include "spin_pool.h"

#include "avx2_math.h"
#include "int8_activations.h"

#include <atomic>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

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
// Q4_K regrouped (our layout, made by `regroup_block`): the sub-scales and sub-minima unpacked to bytes, and
// in each half of 128 values byte i holds value i (low nibble) and value i + 64 (high): a 64-byte load's low
// nibbles are 64 consecutive values (two sub-blocks), its high nibbles the next 64. Four bytes more a block.
struct BlockQ4_KR {
  static constexpr int kValues = 256;
  uint16_t d, dmin;
  uint8_t sc[8], mn[8];  // w = d * sc[b] * q - dmin * mn[b], b = the sub-block of 32
  uint8_t qs[128];
};
// Q6_K regrouped (`regroup_block`): the same bytes per block, the values' low four bits paired as in
// BlockQ4_KR (in each half of 128 values byte i of ql holds value i and i + 64) and qh's byte i holding the top
// two bits of values i, i + 64, i + 128 and i + 192 (bits 0-1, 2-3, 4-5, 6-7).
struct BlockQ6_KR {
  static constexpr int kValues = 256;
  uint8_t ql[128];
  uint8_t qh[64];
  int8_t scales[16];  // one per 16 values, as the file's
  uint16_t d;         // w = d * scales[v / 16] * (q - 32)
};
// Q4_K and Q6_K with sixteen rows interleaved (our layouts, made by `regroup_group`): one block holds super-block j
// of rows 16g..16g + 15, so that one 512-bit vpdpbusd multiplies four values of each of the sixteen rows by the
// same four values of x (broadcast) and its sixteen int32 lanes are the sixteen rows' sums: no horizontal sums,
// each sub-block's scale applies lane by lane, and the weights' bytes are unpacked once for every row of x.
// Byte 4r + j of a 64-byte run belongs to row r. The same bytes as sixteen blocks of BlockQ4_KR / BlockQ6_KR.
struct BlockQ4_KX16 {
  static constexpr int kValues = 256, kRows = 16;
  uint16_t d[16], dmin[16];
  uint8_t sc[8][16];     // [sub-block of 32][row]
  uint8_t mn[4][16][2];  // [pair p][row][sub-block 2p, 2p + 1]: int16 pairs against x's sums (vpdpwssd)
  uint8_t qs[8][4][64];  // [sub-block s][c][4r + j]: low nibble value 32s + 4c + j, high nibble that + 16
};                       // w = d * sc[s] * q - dmin * mn[s]
struct BlockQ6_KX16 {
  static constexpr int kValues = 256, kRows = 16;
  struct Pair {            // sub-blocks 2q and 2q + 1 of 16 values, in the order the kernel reads them
    uint8_t ql[4][64];     // [c][4r + j]: low four bits of value 32q + 4c + j (low nibble), that + 16 (high)
    uint8_t qh[2][64];     // [e][4r + j]: top two bits of load c = 2e's low, high nibble's values (bits 0-1,
                           // 2-3), then of c = 2e + 1's (4-5, 6-7)
    int8_t sc[16][2];      // [row][sub-block 2q, 2q + 1]
  } pairs[8];
  uint16_t d[16];          // w = d * sc * (q - 32)
};
// The blocks of 32 values with sixteen rows interleaved: byte 4r + j of each 64-byte run belongs to row r
struct BlockQ8_0X16 {
  static constexpr int kValues = 32, kRows = 16;
  uint16_t d[16];
  int8_t qs[8][64];  // [c][4r + j]: value 4c + j of row r
};
struct BlockQ4_1X16 {
  static constexpr int kValues = 32, kRows = 16;
  uint16_t d[16], m[16];
  uint8_t qs[4][64];  // [c][4r + j]: value 4c + j (low nibble), 16 + 4c + j (high): row r's file byte 4c + j
};
struct BlockQ5_0X16 {
  static constexpr int kValues = 32, kRows = 16;
  uint16_t d[16];
  uint8_t qs[4][64];   // the low four bits as BlockQ4_1X16's
  uint64_t qh[4][2];   // [c][low, high nibble's value]: bit 4r + j, the fifth bit of that value of row r
};
#pragma pack(pop)
static_assert(sizeof(BlockQ8_0X16) == 16 * 34 && sizeof(BlockQ4_1X16) == 16 * 20 && sizeof(BlockQ5_0X16) == 16 * 22);
static_assert(sizeof(BlockQ4_KX16) == 16 * 148 && sizeof(BlockQ6_KX16) == 16 * 210);
static_assert(sizeof(BlockQ4_KR) == 148 && sizeof(BlockQ6_KR) == 210);

// Rows of W one block holds: 16 for the interleaved layouts, else 1
template <class B, class = void>
struct RowsPerBlock {
  static constexpr int value = 1;
};
template <class B>
struct RowsPerBlock<B, std::void_t<decltype(B::kRows)>> {
  static constexpr int value = B::kRows;
};
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

// A Q4_K block regrouped (BlockQ4_KR): file chunk j's 32 bytes hold values 64j + l (low) and 64j + 32 + l
// (high); half h's byte i takes value 128h + i and 128h + 64 + i, so from chunks a = 2h and b = 2h + 1 byte l
// (l < 32): low nibbles a's and b's low nibbles, and byte 32 + l their high nibbles.
inline void regroup_block(const BlockQ4_K& in, BlockQ4_KR& out) {
  out.d = in.d;
  out.dmin = in.dmin;
  q4k_scales(in.scales, out.sc, out.mn);
  for (int h = 0; h < 2; ++h) {
    const uint8_t *a = in.qs + 64 * h, *b = a + 32;
    uint8_t* q = out.qs + 64 * h;
    for (int l = 0; l < 32; ++l) {
      q[l] = static_cast<uint8_t>((a[l] & 0x0f) | (b[l] << 4));
      q[32 + l] = static_cast<uint8_t>((a[l] >> 4) | (b[l] & 0xf0));
    }
  }
}

// The file's Q6_K values (0..63, before the -32) in order
inline void q6k_values(const BlockQ6_K& b, uint8_t q[256]) {
  for (int h = 0; h < 2; ++h) {
    const uint8_t *ql = b.ql + 64 * h, *qh = b.qh + 32 * h;
    uint8_t* out = q + 128 * h;
    for (int l = 0; l < 32; ++l) {
      out[l] = static_cast<uint8_t>((ql[l] & 0xf) | ((qh[l] & 3) << 4));
      out[l + 32] = static_cast<uint8_t>((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4));
      out[l + 64] = static_cast<uint8_t>((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
      out[l + 96] = static_cast<uint8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4));
    }
  }
}

inline void regroup_block(const BlockQ6_K& in, BlockQ6_KR& out) {
  uint8_t q[256];
  q6k_values(in, q);
  for (int h = 0; h < 2; ++h)
    for (int i = 0; i < 64; ++i) out.ql[64 * h + i] = static_cast<uint8_t>((q[128 * h + i] & 0xf) | (q[128 * h + 64 + i] << 4));
  for (int i = 0; i < 64; ++i)
    out.qh[i] = static_cast<uint8_t>((q[i] >> 4) | ((q[64 + i] >> 4) << 2) | ((q[128 + i] >> 4) << 4) | ((q[192 + i] >> 4) << 6));
  std::memcpy(out.scales, in.scales, 16);
  out.d = in.d;
}

// The file's Q4_K values (0..15) in order
inline void q4k_values(const BlockQ4_K& b, uint8_t q[256]) {
  for (int j = 0; j < 4; ++j)
    for (int l = 0; l < 32; ++l) q[64 * j + l] = b.qs[32 * j + l] & 0xf, q[64 * j + 32 + l] = b.qs[32 * j + l] >> 4;
}

// Super-block j of sixteen rows (rows[r]: row r's block j) interleaved
inline void regroup_group(const BlockQ4_K* const rows[16], BlockQ4_KX16& out) {
  for (int r = 0; r < 16; ++r) {
    const BlockQ4_K& b = *rows[r];
    out.d[r] = b.d, out.dmin[r] = b.dmin;
    uint8_t sc[8], mn[8], q[256];
    q4k_scales(b.scales, sc, mn);
    q4k_values(b, q);
    for (int s = 0; s < 8; ++s) out.sc[s][r] = sc[s], out.mn[s / 2][r][s % 2] = mn[s];
    for (int s = 0; s < 8; ++s)
      for (int c = 0; c < 4; ++c)
        for (int j = 0; j < 4; ++j) {
          const int v = 32 * s + 4 * c + j;
          out.qs[s][c][4 * r + j] = static_cast<uint8_t>(q[v] | (q[v + 16] << 4));
        }
  }
}

inline void regroup_group(const BlockQ6_K* const rows[16], BlockQ6_KX16& out) {
  for (int r = 0; r < 16; ++r) {
    const BlockQ6_K& b = *rows[r];
    uint8_t q[256];
    q6k_values(b, q);
    out.d[r] = b.d;
    for (int p = 0; p < 8; ++p) out.pairs[p].sc[r][0] = b.scales[2 * p], out.pairs[p].sc[r][1] = b.scales[2 * p + 1];
    for (int p = 0; p < 8; ++p)
      for (int c = 0; c < 4; ++c)
        for (int j = 0; j < 4; ++j) {
          const int v = 32 * p + 4 * c + j;  // the low nibble's value; the high nibble's is v + 16
          out.pairs[p].ql[c][4 * r + j] = static_cast<uint8_t>((q[v] & 0xf) | ((q[v + 16] & 0xf) << 4));
          const int shift = 4 * (c % 2);  // loads 2e and 2e + 1 share qh[p][e]
          uint8_t& top = out.pairs[p].qh[c / 2][4 * r + j];
          if (shift == 0) top = 0;
          top = static_cast<uint8_t>(top | ((q[v] >> 4) << shift) | ((q[v + 16] >> 4) << (shift + 2)));
        }
  }
}

inline void regroup_group(const BlockQ8_0* const rows[16], BlockQ8_0X16& out) {
  for (int r = 0; r < 16; ++r) {
    out.d[r] = rows[r]->d;
    for (int c = 0; c < 8; ++c) std::memcpy(&out.qs[c][4 * r], rows[r]->qs + 4 * c, 4);
  }
}

inline void regroup_group(const BlockQ4_1* const rows[16], BlockQ4_1X16& out) {
  for (int r = 0; r < 16; ++r) {
    out.d[r] = rows[r]->d, out.m[r] = rows[r]->m;
    for (int c = 0; c < 4; ++c) std::memcpy(&out.qs[c][4 * r], rows[r]->qs + 4 * c, 4);
  }
}

inline void regroup_group(const BlockQ5_0* const rows[16], BlockQ5_0X16& out) {
  std::memset(out.qh, 0, sizeof(out.qh));
  for (int r = 0; r < 16; ++r) {
    out.d[r] = rows[r]->d;
    uint32_t high;
    std::memcpy(&high, rows[r]->qh, 4);
    for (int c = 0; c < 4; ++c) {
      std::memcpy(&out.qs[c][4 * r], rows[r]->qs + 4 * c, 4);
      for (int j = 0; j < 4; ++j) {
        out.qh[c][0] |= static_cast<uint64_t>((high >> (4 * c + j)) & 1) << (4 * r + j);
        out.qh[c][1] |= static_cast<uint64_t>((high >> (16 + 4 * c + j)) & 1) << (4 * r + j);
      }
    }
  }
}

namespace vireo_gguf_avx2 {
#include "gguf_dot_body.h"
}  // namespace vireo_gguf_avx2

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni")
#define VIREO_GGUF_VNNI
namespace vireo_gguf_vnni {
#include "gguf_dot_body.h"
}  // namespace vireo_gguf_vnni
#undef VIREO_GGUF_VNNI
#pragma GCC pop_options

// Whether this CPU runs the AVX-512 VNNI bodies (and they are not turned off: `use_vnni`)
bool vnni_supported() {
  static const bool supported = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                                __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
  return supported;
}
std::atomic<bool> vnni_enabled{true};

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
  uint8_t sc[8], mn[8], q[256];
  q4k_scales(b.scales, sc, mn);
  q4k_values(b, q);
  const float d = half(b.d), dmin = half(b.dmin);
  for (int s = 0; s < 8; ++s) {
    const float scale = d * sc[s], minimum = dmin * mn[s];
    for (int v = 32 * s; v < 32 * s + 32; ++v) y[v] = scale * q[v] - minimum;
  }
}
inline void dequantize_block(const BlockQ4_KR& b, float* y) {
  const float d = half(b.d), dmin = half(b.dmin);
  for (int h = 0; h < 2; ++h)
    for (int s = 0; s < 2; ++s) {  // bytes 64h + 32s..: sub-block 4h + s (low nibbles), 4h + 2 + s (high)
      const float d0 = d * b.sc[4 * h + s], m0 = dmin * b.mn[4 * h + s];
      const float d1 = d * b.sc[4 * h + 2 + s], m1 = dmin * b.mn[4 * h + 2 + s];
      const uint8_t* q = b.qs + 64 * h + 32 * s;
      float* out = y + 128 * h + 32 * s;
      for (int l = 0; l < 32; ++l) out[l] = d0 * (q[l] & 0xf) - m0, out[64 + l] = d1 * (q[l] >> 4) - m1;
    }
}
inline void dequantize_block(const BlockQ6_KR& b, float* y) {
  const float d = half(b.d);
  for (int h = 0; h < 2; ++h)
    for (int g = 0; g < 4; ++g) {  // values 128h + 16g.. (low nibbles, scale 8h + g) and + 64 (high, 8h + 4 + g)
      const float d0 = d * b.scales[8 * h + g], d1 = d * b.scales[8 * h + 4 + g];
      const uint8_t *ql = b.ql + 64 * h + 16 * g, *qh = b.qh + 16 * g;
      float* out = y + 128 * h + 16 * g;
      for (int l = 0; l < 16; ++l) {
        out[l] = d0 * (static_cast<int>((ql[l] & 0xf) | (((qh[l] >> (4 * h)) & 3) << 4)) - 32);
        out[64 + l] = d1 * (static_cast<int>((ql[l] >> 4) | (((qh[l] >> (4 * h + 2)) & 3) << 4)) - 32);
      }
    }
}
inline void dequantize_block(const BlockQ6_K& b, float* y) {
  const float d = half(b.d);
  uint8_t q[256];
  q6k_values(b, q);
  for (int v = 0; v < 256; ++v) y[v] = d * b.scales[v / 16] * (q[v] - 32);
}
// The interleaved layouts' sixteen rows: y[r * stride + v]
inline void dequantize_block(const BlockQ8_0X16& b, float* y, int64_t stride) {
  for (int r = 0; r < 16; ++r) {
    const float d = half(b.d[r]);
    for (int c = 0; c < 8; ++c)
      for (int j = 0; j < 4; ++j) y[r * stride + 4 * c + j] = d * b.qs[c][4 * r + j];
  }
}
inline void dequantize_block(const BlockQ4_1X16& b, float* y, int64_t stride) {
  for (int r = 0; r < 16; ++r) {
    const float d = half(b.d[r]), m = half(b.m[r]);
    for (int c = 0; c < 4; ++c)
      for (int j = 0; j < 4; ++j) {
        const uint8_t byte = b.qs[c][4 * r + j];
        y[r * stride + 4 * c + j] = d * (byte & 0xf) + m, y[r * stride + 16 + 4 * c + j] = d * (byte >> 4) + m;
      }
  }
}
inline void dequantize_block(const BlockQ5_0X16& b, float* y, int64_t stride) {
  for (int r = 0; r < 16; ++r) {
    const float d = half(b.d[r]);
    for (int c = 0; c < 4; ++c)
      for (int j = 0; j < 4; ++j) {
        const uint8_t byte = b.qs[c][4 * r + j];
        const int lo = (byte & 0xf) | static_cast<int>(((b.qh[c][0] >> (4 * r + j)) & 1) << 4);
        const int hi = (byte >> 4) | static_cast<int>(((b.qh[c][1] >> (4 * r + j)) & 1) << 4);
        y[r * stride + 4 * c + j] = d * (lo - 16), y[r * stride + 16 + 4 * c + j] = d * (hi - 16);
      }
  }
}
inline void dequantize_block(const BlockQ4_KX16& b, float* y, int64_t stride) {
  for (int r = 0; r < 16; ++r) {
    const float d = half(b.d[r]), dmin = half(b.dmin[r]);
    float* out = y + r * stride;
    for (int s = 0; s < 8; ++s) {
      const float scale = d * b.sc[s][r], minimum = dmin * b.mn[s / 2][r][s % 2];
      for (int c = 0; c < 4; ++c)
        for (int j = 0; j < 4; ++j) {
          const uint8_t byte = b.qs[s][c][4 * r + j];
          out[32 * s + 4 * c + j] = scale * (byte & 0xf) - minimum;
          out[32 * s + 16 + 4 * c + j] = scale * (byte >> 4) - minimum;
        }
    }
  }
}
inline void dequantize_block(const BlockQ6_KX16& b, float* y, int64_t stride) {
  for (int r = 0; r < 16; ++r) {
    const float d = half(b.d[r]);
    float* out = y + r * stride;
    for (int p = 0; p < 8; ++p) {
      const float d0 = d * b.pairs[p].sc[r][0], d1 = d * b.pairs[p].sc[r][1];
      for (int c = 0; c < 4; ++c)
        for (int j = 0; j < 4; ++j) {
          const int shift = 4 * (c % 2), top = b.pairs[p].qh[c / 2][4 * r + j] >> shift, low = b.pairs[p].ql[c][4 * r + j];
          out[32 * p + 4 * c + j] = d0 * (static_cast<int>((low & 0xf) | ((top & 3) << 4)) - 32);
          out[32 * p + 16 + 4 * c + j] = d1 * (static_cast<int>((low >> 4) | (((top >> 2) & 3) << 4)) - 32);
        }
    }
  }
}

// ---- whole matrices ----
template <class Block>
void check_blocks(const torch::Tensor& blocks, int64_t k) {
  constexpr int64_t kRows = RowsPerBlock<Block>::value;
  TORCH_CHECK(blocks.scalar_type() == torch::kUInt8 && blocks.dim() == 2 && blocks.is_contiguous(),
              "blocks: contiguous uint8 [N, bytes per row]");
  TORCH_CHECK(k % Block::kValues == 0, "K (", k, ") is not a multiple of the block's ", Block::kValues, " values");
  TORCH_CHECK(blocks.size(1) == k / Block::kValues * static_cast<int64_t>(sizeof(Block)) / kRows, "a row of ", k,
              " values takes ", k / Block::kValues * sizeof(Block) / kRows, " bytes of this type, not ", blocks.size(1));
  TORCH_CHECK(blocks.size(0) % kRows == 0, "this layout interleaves ", kRows, " rows; ", blocks.size(0), " is not a multiple");
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
  const bool vnni = vnni_supported() && vnni_enabled.load(std::memory_order_relaxed);
  if constexpr (RowsPerBlock<Block>::value > 1) {
    // prefill-size x a slice of rows at a time, so that each group of W meets rows of x still in L2 (1024 rows
    // of 1536 in one pass: 76 ms; in slices of 256: see benchmarks/results/gguf-kernels-*.json)
    constexpr int64_t kRows = RowsPerBlock<Block>::value, kSlice = 256;
    for (int64_t r0 = 0; r0 < m; r0 += kSlice) {
      const int64_t r1 = std::min(m, r0 + kSlice);
      vireo_pool::parallel_for(0, n / kRows, 1, [&](int64_t begin, int64_t end) {
        if (vnni) vireo_gguf_vnni::dot_groups(w, begin, end, nblocks, xq, r0, r1, k, y, n);
        else vireo_gguf_avx2::dot_groups(w, begin, end, nblocks, xq, r0, r1, k, y, n);
      });
    }
  } else {
    vireo_pool::parallel_for(0, n, 16, [&](int64_t begin, int64_t end) {
      if (vnni) vireo_gguf_vnni::dot_rows(w, begin, end, nblocks, xq, m, k, y, n);
      else vireo_gguf_avx2::dot_rows(w, begin, end, nblocks, xq, m, k, y, n);
    });
  }
  return out;
}

// Rows [begin, end) of W (a multiple of the layout's rows) de-quantized by `emit(row, block j, values)`:
// values holds the block's kValues values of each of its rows, kValues apart
template <class Block, class Emit>
void dequantize_rows(const Block* w, int64_t begin, int64_t end, int64_t nblocks, const Emit& emit) {
  constexpr int kRows = RowsPerBlock<Block>::value;
  float values[kRows * Block::kValues];
  for (int64_t row = begin; row < end; row += kRows)
    for (int64_t j = 0; j < nblocks; ++j) {
      const Block& b = w[row / kRows * nblocks + j];
      if constexpr (kRows > 1) dequantize_block(b, values, Block::kValues);
      else dequantize_block(b, values);
      for (int r = 0; r < kRows; ++r) emit(row + r, j, values + r * Block::kValues);
    }
}

// W as float32, or rounded (to nearest even) to bfloat16: the prefill's GEMM operand where bfloat16 GEMMs
// are native, half the bytes to write
template <class Block>
torch::Tensor dequantize(const torch::Tensor& blocks, int64_t k, bool bfloat16) {
  check_blocks<Block>(blocks, k);
  constexpr int64_t kRows = RowsPerBlock<Block>::value, kValues = Block::kValues;
  const int64_t n = blocks.size(0), nblocks = k / kValues;
  auto out = torch::empty({n, k}, bfloat16 ? torch::kBFloat16 : torch::kFloat32);
  const Block* w = reinterpret_cast<const Block*>(blocks.data_ptr<uint8_t>());
  if (!bfloat16) {
    float* y = out.data_ptr<float>();
    vireo_pool::parallel_for(0, n / kRows, std::max<int64_t>(1, 16 / kRows), [&](int64_t begin, int64_t end) {
      dequantize_rows(w, begin * kRows, end * kRows, nblocks, [&](int64_t row, int64_t j, const float* values) {
        std::memcpy(y + row * k + j * kValues, values, kValues * sizeof(float));
      });
    });
    return out;
  }
  at::BFloat16* y = out.data_ptr<at::BFloat16>();
  vireo_pool::parallel_for(0, n / kRows, std::max<int64_t>(1, 16 / kRows), [&](int64_t begin, int64_t end) {
    dequantize_rows(w, begin * kRows, end * kRows, nblocks, [&](int64_t row, int64_t j, const float* values) {
      at::BFloat16* dst = y + row * k + j * kValues;
      for (int v = 0; v < kValues; ++v) dst[v] = at::BFloat16(values[v]);
    });
  });
  return out;
}

// GGML's type numbers, and ours for our layouts (GGML has no types 112, 114, 203, 206, 208, 212, 214)
enum BlockType : int64_t {
  kQ4_0 = 2, kQ4_1 = 3, kQ5_0 = 6, kQ8_0 = 8, kQ4_K = 12, kQ6_K = 14,
  kQ4_KR = 112, kQ6_KR = 114, kQ4_1X16 = 203, kQ5_0X16 = 206, kQ8_0X16 = 208, kQ4_KX16 = 212, kQ6_KX16 = 214
};

template <typename Fn>
torch::Tensor by_type(int64_t type, Fn fn) {
  switch (type) {
    case kQ4_0: return fn(BlockQ4_0{});
    case kQ4_1: return fn(BlockQ4_1{});
    case kQ5_0: return fn(BlockQ5_0{});
    case kQ8_0: return fn(BlockQ8_0{});
    case kQ4_K: return fn(BlockQ4_K{});
    case kQ6_K: return fn(BlockQ6_K{});
    case kQ4_KR: return fn(BlockQ4_KR{});
    case kQ6_KR: return fn(BlockQ6_KR{});
    case kQ4_1X16: return fn(BlockQ4_1X16{});
    case kQ5_0X16: return fn(BlockQ5_0X16{});
    case kQ8_0X16: return fn(BlockQ8_0X16{});
    case kQ4_KX16: return fn(BlockQ4_KX16{});
    case kQ6_KX16: return fn(BlockQ6_KX16{});
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

// `in_place`: where the layouts are the same size (Q6_K's), the blocks are overwritten and returned (no second
// copy of a large matrix, such as a tied LM head, while the model loads)
template <class From, class To>
torch::Tensor regrouped(const torch::Tensor& blocks, int64_t k, bool in_place) {
  check_blocks<From>(blocks, k);
  constexpr int64_t kRows = RowsPerBlock<To>::value;
  TORCH_CHECK(blocks.size(0) % kRows == 0, "this layout interleaves ", kRows, " rows; ", blocks.size(0), " is not a multiple");
  const int64_t n = blocks.size(0), nblocks = k / From::kValues;
  constexpr bool kSameSize = sizeof(From) * kRows == sizeof(To);
  auto out = kSameSize && in_place ? blocks : torch::empty({n, nblocks * static_cast<int64_t>(sizeof(To)) / kRows}, torch::kUInt8);
  const auto* in = reinterpret_cast<const From*>(blocks.data_ptr<uint8_t>());
  auto* to = reinterpret_cast<To*>(out.data_ptr<uint8_t>());
  if constexpr (kRows == 1) {
    vireo_pool::parallel_for(0, n * nblocks, 256, [&](int64_t begin, int64_t end) {
      for (int64_t j = begin; j < end; ++j) {
        const From block = in[j];  // a copy: `to` may be `in`
        regroup_block(block, to[j]);
      }
    });
  } else {  // a group of rows at a time, copied first: `to` may be `in`, and a group's rows are its bytes
    vireo_pool::parallel_for(0, n / kRows, 1, [&](int64_t begin, int64_t end) {
      std::vector<From> group(kRows * nblocks);
      for (int64_t g = begin; g < end; ++g) {
        std::memcpy(group.data(), in + g * kRows * nblocks, group.size() * sizeof(From));
        for (int64_t j = 0; j < nblocks; ++j) {
          const From* rows[kRows];
          for (int r = 0; r < kRows; ++r) rows[r] = &group[r * nblocks + j];
          regroup_group(rows, to[g * nblocks + j]);
        }
      }
    });
  }
  return out;
}

// A file's rows [N, bytes] in one of our layouts (`to`): Q4_K and Q6_K regrouped row by row (112, 114), or
// sixteen rows interleaved (N a multiple of 16): Q4_1 (203), Q5_0 (206), Q8_0 (208), Q4_K (212), Q6_K (214);
// what gguf_mm reads fastest, made once
torch::Tensor gguf_regroup(torch::Tensor blocks, int64_t type, int64_t to, int64_t k, bool in_place) {
  if (type == kQ4_K && to == kQ4_KR) return regrouped<BlockQ4_K, BlockQ4_KR>(blocks, k, in_place);
  if (type == kQ6_K && to == kQ6_KR) return regrouped<BlockQ6_K, BlockQ6_KR>(blocks, k, in_place);
  if (type == kQ4_1 && to == kQ4_1X16) return regrouped<BlockQ4_1, BlockQ4_1X16>(blocks, k, in_place);
  if (type == kQ5_0 && to == kQ5_0X16) return regrouped<BlockQ5_0, BlockQ5_0X16>(blocks, k, in_place);
  if (type == kQ8_0 && to == kQ8_0X16) return regrouped<BlockQ8_0, BlockQ8_0X16>(blocks, k, in_place);
  if (type == kQ4_K && to == kQ4_KX16) return regrouped<BlockQ4_K, BlockQ4_KX16>(blocks, k, in_place);
  if (type == kQ6_K && to == kQ6_KX16) return regrouped<BlockQ6_K, BlockQ6_KX16>(blocks, k, in_place);
  TORCH_CHECK(false, "no layout ", to, " of type ", type,
              " (Q4_1 3 -> 203, Q5_0 6 -> 206, Q8_0 8 -> 208, Q4_K 12 -> 112 or 212, Q6_K 14 -> 114 or 214)");
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
  m.def("gguf_mm", &gguf_mm, "x @ W.T, W in GGML blocks (Q4_0/Q4_1/Q5_0/Q8_0/Q4_K/Q6_K) or one of our layouts of them, x rounded to int8");
  m.def("gguf_regroup", &gguf_regroup,
        "a file's blocks in one of our layouts (112 / 114 regrouped rows; 203, 206, 208, 212, 214 sixteen rows interleaved)",
        pybind11::arg("blocks"), pybind11::arg("type"), pybind11::arg("to"), pybind11::arg("k"),
        pybind11::arg("in_place") = false);
  m.def("gguf_dequantize", &gguf_dequantize, "GGML blocks as float32 [N, K], or rounded to bfloat16",
        pybind11::arg("blocks"), pybind11::arg("type"), pybind11::arg("k"), pybind11::arg("bfloat16") = false);
  m.def("threads_used", &threads_used, "threads at::parallel_for ran `tasks` tasks on");
  m.def("vnni", [] { return vnni_supported() && vnni_enabled.load(); }, "whether gguf_mm runs its AVX-512 VNNI bodies");
  m.def("use_vnni", [](bool on) { vnni_enabled.store(on); },
        "let gguf_mm run its AVX-512 VNNI bodies where the CPU has them (on), or always the AVX2 ones (tests)");
}
