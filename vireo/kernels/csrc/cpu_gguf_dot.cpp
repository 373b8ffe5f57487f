// Decode-size matmuls straight on a GGUF file's quantized blocks, the bytes llama.cpp itself reads:
// Q4_0, Q4_1, Q5_0, Q8_0 (blocks of 32 values) and Q4_K, Q6_K (super-blocks of 256). Activations are
// rounded to int8 per block of 32 (int8_activations.h); each block of 32 takes one integer dot product
// with the weight's values and one float multiply-add by the product of the two scales. Offsets (Q4_0's
// -8, Q5_0's -16, Q4_1's and Q4_K's minima) multiply the block's sum of the rounded x, Q6_K's -32 enters
// the integer products (its sub-scales are per 16 values). The dot products (gguf_dot_body.h) are compiled
// for AVX2 and for AVX-512 VNNI, the latter run where the CPU has it (checked once, at run time: the
// machines we run on differ). Also each type's de-quantization to float32 (the prefill path's slices,
// embedding rows). Work is split over output channels (spin_pool.h).
// The block layouts are GGUF's, as its format describes them (gguf-py's quants.py reads them the same way),
// and two of ours: Q4_K and Q6_K regrouped (`gguf_regroup`, once at load) so that wide registers read them whole.
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
#pragma pack(pop)
static_assert(sizeof(BlockQ4_KR) == 148 && sizeof(BlockQ6_KR) == 210);
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
  const bool vnni = vnni_supported() && vnni_enabled.load(std::memory_order_relaxed);
  vireo_pool::parallel_for(0, n, 16, [&](int64_t begin, int64_t end) {
    if (vnni) vireo_gguf_vnni::dot_rows(w, begin, end, nblocks, xq, m, k, y, n);
    else vireo_gguf_avx2::dot_rows(w, begin, end, nblocks, xq, m, k, y, n);
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

// GGML's type numbers, and ours for the regrouped Q4_K and Q6_K (GGML has no types 112 and 114)
enum BlockType : int64_t { kQ4_0 = 2, kQ4_1 = 3, kQ5_0 = 6, kQ8_0 = 8, kQ4_K = 12, kQ6_K = 14, kQ4_KR = 112, kQ6_KR = 114 };

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

// `in_place`: where the layouts are the same size (Q6_K), the blocks are overwritten and returned (no second
// copy of a large matrix, such as a tied LM head, while the model loads)
template <class From, class To>
torch::Tensor regrouped(const torch::Tensor& blocks, int64_t k, bool in_place) {
  check_blocks<From>(blocks, k);
  const int64_t n = blocks.size(0), nblocks = k / From::kValues;
  constexpr bool kSameSize = sizeof(From) == sizeof(To);
  auto out = kSameSize && in_place ? blocks : torch::empty({n, nblocks * static_cast<int64_t>(sizeof(To))}, torch::kUInt8);
  const auto* in = reinterpret_cast<const From*>(blocks.data_ptr<uint8_t>());
  auto* to = reinterpret_cast<To*>(out.data_ptr<uint8_t>());
  vireo_pool::parallel_for(0, n * nblocks, 256, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      const From block = in[j];  // a copy: `to` may be `in`
      regroup_block(block, to[j]);
    }
  });
  return out;
}

// Q4_K or Q6_K rows [N, bytes] as our regrouped rows (types 112, 114): what gguf_mm reads fastest, made once
torch::Tensor gguf_regroup(torch::Tensor blocks, int64_t type, int64_t k, bool in_place) {
  if (type == kQ4_K) return regrouped<BlockQ4_K, BlockQ4_KR>(blocks, k, in_place);
  if (type == kQ6_K) return regrouped<BlockQ6_K, BlockQ6_KR>(blocks, k, in_place);
  TORCH_CHECK(false, "only Q4_K (12) and Q6_K (14) have a regrouped layout, not type ", type);
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
  m.def("gguf_mm", &gguf_mm, "x @ W.T, W in GGML blocks (Q4_0/Q4_1/Q5_0/Q8_0/Q4_K/Q6_K) or regrouped Q4_K / Q6_K, x rounded to int8");
  m.def("gguf_regroup", &gguf_regroup, "Q4_K / Q6_K blocks regrouped (our types 112 / 114), what gguf_mm reads fastest",
        pybind11::arg("blocks"), pybind11::arg("type"), pybind11::arg("k"), pybind11::arg("in_place") = false);
  m.def("gguf_dequantize", &gguf_dequantize, "GGML blocks as float32 [N, K], or rounded to bfloat16",
        pybind11::arg("blocks"), pybind11::arg("type"), pybind11::arg("k"), pybind11::arg("bfloat16") = false);
  m.def("threads_used", &threads_used, "threads at::parallel_for ran `tasks` tasks on");
  m.def("vnni", [] { return vnni_supported() && vnni_enabled.load(); }, "whether gguf_mm runs its AVX-512 VNNI bodies");
  m.def("use_vnni", [](bool on) { vnni_enabled.store(on); },
        "let gguf_mm run its AVX-512 VNNI bodies where the CPU has them (on), or always the AVX2 ones (tests)");
}
