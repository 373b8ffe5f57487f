// Decode attention (one query token per sequence) straight from the paged KV cache on the CPU: each
// (sequence, KV head) reads its keys and values block by block through the block table, for all the
// query heads that share that KV head, with no gathered copy of the cache. The cache holds float32 or
// float16 (read with F16C, 8 values a load); scores, softmax and the weighted sum of values in float32.
#include <ATen/Parallel.h>
#include <immintrin.h>
#include <torch/extension.h>

#include "spin_pool.h"

#include "avx2_math.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace {

using vireo_avx2::exp8;
using vireo_avx2::hsum;

// eight cache values as float32
inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load8(const at::Half* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

template <typename T>
inline float dot(const float* a, const T* b, int64_t n) {
  int64_t i = 0;
  __m256 acc = _mm256_setzero_ps();
  for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), load8(b + i), acc);
  float sum = hsum(acc);
  for (; i < n; ++i) sum += a[i] * static_cast<float>(b[i]);
  return sum;
}

// y += w * x
template <typename T>
inline void axpy(float w, const T* x, float* y, int64_t n) {
  int64_t i = 0;
  const __m256 wv = _mm256_set1_ps(w);
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(wv, load8(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += w * static_cast<float>(x[i]);
}

// row[t] = e^(row[t] - top) for t < n; returns their sum
inline float exp_shifted_sum(float* row, int64_t n, float top) {
  int64_t t = 0;
  __m256 total = _mm256_setzero_ps();
  const __m256 shift = _mm256_set1_ps(top);
  for (; t + 8 <= n; t += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(row + t), shift));
    _mm256_storeu_ps(row + t, e);
    total = _mm256_add_ps(total, e);
  }
  __m128 lo = _mm_add_ps(_mm256_castps256_ps128(total), _mm256_extractf128_ps(total, 1));
  lo = _mm_hadd_ps(lo, lo);
  lo = _mm_hadd_ps(lo, lo);
  float sum = _mm_cvtss_f32(lo);
  for (; t < n; ++t) sum += (row[t] = std::exp(row[t] - top));
  return sum;
}

// calls fn(t, slot) for the keys [first, last) of a block table, walking block by block (no division per key)
template <typename Fn>
inline void for_slots(const int64_t* table, int64_t block_size, int64_t first, int64_t last, Fn fn) {
  int64_t pos = first;
  while (pos < last) {
    const int64_t b = pos / block_size;
    const int64_t stop = std::min(last, (b + 1) * block_size);
    const int64_t base = table[b] * block_size - b * block_size;  // slot of pos = base + pos
    for (; pos < stop; ++pos) fn(pos - first, base + pos);
  }
}

// scores of eight keys (rows `base + slot[j] * stride + offset`) against q, dim a multiple of 8: eight
// accumulators, reduced together at the end (one horizontal sum per key would cost more than its dot product)
template <typename T>
inline void eight_scores(const float* q, const T* base, const int64_t* slot, int64_t stride, int64_t offset,
                         int64_t dim, float scale, float* out) {
  const T* key[8];
  for (int j = 0; j < 8; ++j) key[j] = base + slot[j] * stride + offset;
  __m256 acc[8];
  for (int j = 0; j < 8; ++j) acc[j] = _mm256_setzero_ps();
  for (int64_t d = 0; d < dim; d += 8) {
    const __m256 qv = _mm256_loadu_ps(q + d);
    for (int j = 0; j < 8; ++j) acc[j] = _mm256_fmadd_ps(qv, load8(key[j] + d), acc[j]);
  }
  // pairwise sums: lane-local halves of keys 0-3 and 4-7, then the two 128-bit lanes added
  const __m256 s01 = _mm256_hadd_ps(acc[0], acc[1]), s23 = _mm256_hadd_ps(acc[2], acc[3]);
  const __m256 s45 = _mm256_hadd_ps(acc[4], acc[5]), s67 = _mm256_hadd_ps(acc[6], acc[7]);
  const __m256 lo = _mm256_hadd_ps(s01, s23), hi = _mm256_hadd_ps(s45, s67);
  const __m256 sums = _mm256_add_ps(_mm256_permute2f128_ps(lo, hi, 0x20), _mm256_permute2f128_ps(lo, hi, 0x31));
  _mm256_storeu_ps(out, _mm256_mul_ps(sums, _mm256_set1_ps(scale)));
}

// out[0..64) = sum over the n keys of p[t] * value row t, in eight register accumulators
template <typename T>
inline void weighted_values_64(const float* p, const T* base, const int64_t* slot, int64_t stride, int64_t offset,
                               int64_t n, float* out) {
  __m256 acc[8];
  for (int i = 0; i < 8; ++i) acc[i] = _mm256_setzero_ps();
  for (int64_t t = 0; t < n; ++t) {
    const __m256 w = _mm256_set1_ps(p[t]);
    const T* v = base + slot[t] * stride + offset;
    for (int i = 0; i < 8; ++i) acc[i] = _mm256_fmadd_ps(w, load8(v + 8 * i), acc[i]);
  }
  for (int i = 0; i < 8; ++i) _mm256_storeu_ps(out + 8 * i, acc[i]);
}

}  // namespace

constexpr int64_t kChunk = 256;  // keys per work item: a long context is split over the threads
// below this many (key, query head) pairs in all, the step's attention runs on the calling thread alone
// (measured on a 2-core EPYC: SmolLM2's 9 heads over 128 keys took 11 us on one thread, 15 on two)
constexpr int64_t kInlineWork = 1536;

struct Item {
  int64_t seq, kv_head, first, last;  // keys [first, last) of one (sequence, KV head)
};

// q [S, H, D]; k_cache, v_cache [blocks, block_size, KVH, D]; block_tables [S, W] int64;
// context_lens [S] int64 (keys 0 .. len-1 are attended); contiguous. -> out [S, H, D] float32
// Work items are (sequence, KV head, chunk of up to kChunk keys), so one long sequence still spreads
// over every thread; each chunk keeps its softmax's max and sum, and the chunks of a (sequence, KV
// head) are merged at the end (the flash-decoding split).
template <typename T>
torch::Tensor attend_over(const torch::Tensor& q, const torch::Tensor& k_cache, const torch::Tensor& v_cache,
                          const torch::Tensor& block_tables, const torch::Tensor& context_lens, double scale) {
  const auto qc = q.contiguous();
  const auto tables = block_tables.to(torch::kInt64).contiguous();
  const auto lens = context_lens.to(torch::kInt64).contiguous();
  const int64_t seqs = qc.size(0), heads = qc.size(1), dim = qc.size(2);
  const int64_t block_size = k_cache.size(1), kv_heads = k_cache.size(2), width = tables.size(1);
  TORCH_CHECK(k_cache.size(3) == dim && heads % kv_heads == 0, "head dims and GQA groups must match");
  TORCH_CHECK(tables.size(0) == seqs && lens.size(0) == seqs, "one block table and length per sequence");
  const int64_t group = heads / kv_heads;
  const float* qp = qc.data_ptr<float>();
  const T* kp = k_cache.data_ptr<T>();
  const T* vp = v_cache.data_ptr<T>();
  const int64_t* tp = tables.data_ptr<int64_t>();
  const int64_t* lp = lens.data_ptr<int64_t>();
  const float fscale = static_cast<float>(scale);
  const int64_t token_stride = kv_heads * dim;  // between consecutive slots of the cache

  std::vector<Item> items;
  std::vector<int64_t> first_item(seqs * kv_heads + 1);  // items of (s, kh): [first_item[i], first_item[i+1])
  for (int64_t s = 0; s < seqs; ++s) {
    const int64_t len = lp[s];
    TORCH_CHECK(len >= 1 && len <= width * block_size, "context length outside the block table");
    for (int64_t kh = 0; kh < kv_heads; ++kh) {
      first_item[s * kv_heads + kh] = static_cast<int64_t>(items.size());
      for (int64_t a = 0; a < len; a += kChunk) items.push_back({s, kh, a, std::min(len, a + kChunk)});
    }
  }
  first_item[seqs * kv_heads] = static_cast<int64_t>(items.size());
  const int64_t n_items = static_cast<int64_t>(items.size());
  std::vector<float> part_out(n_items * group * dim, 0.f), part_max(n_items * group), part_sum(n_items * group);

  int64_t work = 0;  // keys times query heads: below kInlineWork one thread is done before two would meet
  for (int64_t s = 0; s < seqs; ++s) work += lp[s] * heads;
  const auto attend = [&](int64_t begin, int64_t end) {
    std::vector<float> scores(group * kChunk);
    std::vector<int64_t> slots(kChunk);
    for (int64_t i = begin; i < end; ++i) {
      const Item it = items[i];
      const int64_t n = it.last - it.first, offset = it.kv_head * dim;
      const float* qrow = qp + (it.seq * heads + it.kv_head * group) * dim;
      for_slots(tp + it.seq * width, block_size, it.first, it.last, [&](int64_t t, int64_t slot) { slots[t] = slot; });
      for (int64_t g = 0; g < group; ++g) {
        float* row = scores.data() + g * n;
        int64_t t = 0;
        if (dim % 8 == 0)
          for (; t + 8 <= n; t += 8) eight_scores(qrow + g * dim, kp, slots.data() + t, token_stride, offset, dim, fscale, row + t);
        for (; t < n; ++t) row[t] = dot(qrow + g * dim, kp + slots[t] * token_stride + offset, dim) * fscale;
      }
      for (int64_t g = 0; g < group; ++g) {
        float* row = scores.data() + g * n;
        const float top = *std::max_element(row, row + n);
        part_max[i * group + g] = top;
        part_sum[i * group + g] = exp_shifted_sum(row, n, top);
      }
      float* out = part_out.data() + i * group * dim;
      if (dim % 64 == 0) {
        for (int64_t g = 0; g < group; ++g)
          for (int64_t c = 0; c < dim; c += 64)
            weighted_values_64(scores.data() + g * n, vp, slots.data(), token_stride, offset + c, n, out + g * dim + c);
      } else {
        for (int64_t t = 0; t < n; ++t) {
          const T* value = vp + slots[t] * token_stride + offset;
          for (int64_t g = 0; g < group; ++g) axpy(scores[g * n + t], value, out + g * dim, dim);
        }
      }
    }
  };
  if (work < kInlineWork) attend(0, n_items);
  else vireo_pool::parallel_for(0, n_items, 1, attend);

  auto result = torch::zeros({seqs, heads, dim}, torch::kFloat32);
  float* op = result.data_ptr<float>();
  const auto merge = [&](int64_t begin, int64_t end) {
    for (int64_t sk = begin; sk < end; ++sk) {
      const int64_t s = sk / kv_heads, kh = sk % kv_heads;
      for (int64_t g = 0; g < group; ++g) {
        float top = -INFINITY;
        for (int64_t i = first_item[sk]; i < first_item[sk + 1]; ++i) top = std::max(top, part_max[i * group + g]);
        float total = 0.f;
        float* out = op + (s * heads + kh * group + g) * dim;
        for (int64_t i = first_item[sk]; i < first_item[sk + 1]; ++i) {
          const float w = std::exp(part_max[i * group + g] - top);
          total += w * part_sum[i * group + g];
          axpy(w, part_out.data() + (i * group + g) * dim, out, dim);
        }
        const float inv = 1.f / total;
        for (int64_t d = 0; d < dim; ++d) out[d] *= inv;
      }
    }
  };
  if (work < kInlineWork) merge(0, seqs * kv_heads);
  else vireo_pool::parallel_for(0, seqs * kv_heads, 1, merge);
  return result;
}

// q [S, H, D] float32; k_cache, v_cache [blocks, block_size, KVH, D] float32 or float16 (both one dtype)
torch::Tensor decode_attention(torch::Tensor q, torch::Tensor k_cache, torch::Tensor v_cache, torch::Tensor block_tables,
                               torch::Tensor context_lens, double scale) {
  TORCH_CHECK(q.dim() == 3 && k_cache.dim() == 4 && v_cache.sizes() == k_cache.sizes(), "q [S, H, D], caches [N, B, KVH, D]");
  const auto kv = k_cache.scalar_type();
  TORCH_CHECK(q.scalar_type() == torch::kFloat32 && (kv == torch::kFloat32 || kv == torch::kFloat16) &&
                  v_cache.scalar_type() == kv,
              "a float32 query; float32 or float16 caches, both of one dtype");
  TORCH_CHECK(k_cache.is_contiguous() && v_cache.is_contiguous(), "contiguous caches");
  if (kv == torch::kFloat16) return attend_over<at::Half>(q, k_cache, v_cache, block_tables, context_lens, scale);
  return attend_over<float>(q, k_cache, v_cache, block_tables, context_lens, scale);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  VIREO_POOL_BINDING(m);
  m.def("decode_attention", &decode_attention, "one-token attention over the paged KV cache, float32 or float16 (AVX2, F16C)");
}
