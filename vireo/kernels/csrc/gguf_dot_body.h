// The integer dot products of cpu_gguf_dot.cpp, one block type at a time, written once and compiled twice:
// for AVX2 (namespace vireo_gguf_avx2) and, under `#pragma GCC target`, for AVX-512 VNNI (vireo_gguf_vnni,
// VIREO_GGUF_VNNI defined), which cpu_gguf_dot.cpp picks at run time where the CPU has it. Include only
// from cpu_gguf_dot.cpp, inside one of those namespaces, after the block layouts and `half`.
//
// What differs: VNNI's vpdpbusd makes a block's 32 unsigned-by-signed byte products into eight int32 sums in
// one instruction (AVX2: maddubs, then madd), and its byte masks take Q5_0's fifth bits straight from the
// block's 32-bit word; so there every 32-value type is unsigned values u with w = d * u + c (Q5_0: u = q,
// c = -16 d; Q8_0: u = q + 128, c = -128 d), the offset c times the block's sum of x. AVX2 keeps the signed
// form for Q5_0 and Q8_0 (maddubs' pair sums would overflow int16 at u up to 255). The K-quants' sub-scale
// multiply-adds (madd, then add) are one vpdpwssd on VNNI, and there the regrouped Q4_K and Q6_K are read 64
// bytes of low bits (128 values) a step in 512-bit registers.

// 0xff in byte j where bit j of `bits` is set, else 0
inline __m256i bits_to_bytes(uint32_t bits) {
  const __m256i spread = _mm256_shuffle_epi8(
      _mm256_set1_epi32(static_cast<int>(bits)),
      _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303));
  const __m256i select = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ULL));
  return _mm256_cmpeq_epi8(_mm256_and_si256(spread, select), select);
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

// unsigned bytes u times signed bytes s, the 32 products summed in eight int32 lanes, as floats
inline __m256 dot_u8_s8(__m256i u, __m256i s) {
#ifdef VIREO_GGUF_VNNI
  return _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s));
#else
  return vireo_int8x::dot_u8_s8(u, s);  // |u| <= 127: a pair's sum stays within int16
#endif
}

// acc + the int16 pairs' products summed per int32 lane (madd): one instruction on VNNI (vpdpwssd), else two;
// exact either way (int32 sums that wrap as the adds did)
inline __m256i add_madd(__m256i acc, __m256i a, __m256i b) {
#ifdef VIREO_GGUF_VNNI
  return _mm256_dpwssd_epi32(acc, a, b);
#else
  return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
#endif
}

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
  const float d = half(b.d);
#ifdef VIREO_GGUF_VNNI
  // q itself: the low four bits, 16 added where the fifth bit is set (the bits are the byte mask)
  const __m256i low = unpack_int4(b.qs);
  add_unsigned32<L>(_mm256_mask_add_epi8(low, high, low, _mm256_set1_epi8(16)), d, -16.f * d, x, v0, acc);
#else
  // q - 16 as a signed byte straight away: the low four bits, and 0xf0 (-16) where the fifth bit is clear
  const __m256i w = _mm256_or_si256(unpack_int4(b.qs), _mm256_andnot_si256(bits_to_bytes(high), _mm256_set1_epi8(-16)));
  add_signed32<L>(w, d, x, v0, acc);
#endif
}

template <int L, int R>
inline void add_block(const BlockQ8_0& b, const Rows<R>& x, int64_t v0, Acc<R>& acc) {
#ifdef VIREO_GGUF_VNNI
  const float d = half(b.d);  // q + 128 (the sign bit flipped), unsigned
  add_unsigned32<L>(_mm256_xor_si256(load32(b.qs), _mm256_set1_epi8(-128)), d, -128.f * d, x, v0, acc);
#else
  add_signed32<L>(load32(b.qs), half(b.d), x, v0, acc);
#endif
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
inline const PickMasks kPick;

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
  // per row, the low nibbles' sums and the high nibbles' apart (two chains of multiply-adds, not one)
  __m256i isum[R], isum_hi[R];
  for (int i = 0; i < R; ++i) isum[i] = isum_hi[i] = _mm256_setzero_si256();
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  for (int j = 0; j < 4; ++j) {
    const __m256i sc_lo = _mm256_shuffle_epi8(scales, load32(kPick.same[2 * j]));
    const __m256i sc_hi = _mm256_shuffle_epi8(scales, load32(kPick.same[2 * j + 1]));
    const __m256i bytes = load32(b.qs + 32 * j);
    const __m256i lo = _mm256_and_si256(bytes, low4), hi = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low4);
    for (int i = 0; i < R; ++i) {
      const int8_t* xq = x.q(i, v0 + 64 * j);
      isum[i] = add_madd(isum[i], _mm256_maddubs_epi16(lo, load32(xq)), sc_lo);
      isum_hi[i] = add_madd(isum_hi[i], _mm256_maddubs_epi16(hi, load32(xq + 32)), sc_hi);
    }
  }
  for (int i = 0; i < R; ++i) isum[i] = _mm256_add_epi32(isum[i], isum_hi[i]);
  for (int i = 0; i < R; ++i) {
    const float xs = x.scale(i, v0);
    const __m256i msum = _mm256_madd_epi16(mins, x.bsums(i, v0));
    acc.v[i][0] = _mm256_fmadd_ps(_mm256_set1_ps(d * xs), _mm256_cvtepi32_ps(isum[i]), acc.v[i][0]);
    acc.v[i][1] = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * xs), _mm256_cvtepi32_ps(msum), acc.v[i][1]);
  }
}

// The regrouped Q4_K (BlockQ4_KR): as Q4_K, without unpacking the scales' bits, and each load of weight bytes
// pairs with contiguous x (its low nibbles are the values from v, its high nibbles those from v + 64)
#ifdef VIREO_GGUF_VNNI
// _mm512_permutexvar_epi16 indices over the eight int16 sub-scales: lo[h] puts sub-block 4h's scale in the 16
// int16 lanes of a maddubs result's first 32 values and 4h + 1's in the next; hi[h] those of 4h + 2, 4h + 3.
// pairs: each of eight minima twice (against the sums of x per 16).
struct PickIndices {
  alignas(64) int16_t lo[2][32];
  alignas(64) int16_t hi[2][32];
  alignas(32) int16_t pairs[16];
  alignas(64) int16_t q6_lo[2][32];  // Q6_K's sixteen sub-scales, one per 16 values: 8h..8h + 3 (low nibbles)
  alignas(64) int16_t q6_hi[2][32];  // and 8h + 4..8h + 7 (high nibbles), each over eight int16 lanes
  PickIndices() {
    for (int h = 0; h < 2; ++h)
      for (int t = 0; t < 32; ++t) {
        lo[h][t] = static_cast<int16_t>(4 * h + t / 16), hi[h][t] = static_cast<int16_t>(4 * h + 2 + t / 16);
        q6_lo[h][t] = static_cast<int16_t>(8 * h + t / 8), q6_hi[h][t] = static_cast<int16_t>(8 * h + 4 + t / 8);
      }
    for (int t = 0; t < 16; ++t) pairs[t] = static_cast<int16_t>(t / 2);
  }
};
inline const PickIndices kPickIndices;

// 128 values of R rows of x from v: low-nibble values (lo) against x[v, v + 64), high (hi) against [v + 64, v + 128),
// each pair's products times its int16 sub-scales into the rows' two int32 chains
template <int R>
inline void add_128(__m512i lo, __m512i hi, __m512i sc_lo, __m512i sc_hi, const Rows256<R>& x, int64_t v, __m512i* isum,
                    __m512i* isum_hi) {
  for (int i = 0; i < R; ++i) {
    const int8_t* xq = x.q(i, v);
    isum[i] = _mm512_dpwssd_epi32(isum[i], _mm512_maddubs_epi16(lo, _mm512_loadu_si512(xq)), sc_lo);
    isum_hi[i] = _mm512_dpwssd_epi32(isum_hi[i], _mm512_maddubs_epi16(hi, _mm512_loadu_si512(xq + 64)), sc_hi);
  }
}

template <int L, int R>
inline void add_block(const BlockQ4_KR& b, const Rows256<R>& x, int64_t v0, Acc<R>& acc) {
  const __m512i scales = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b.sc))));
  const __m256i mins = _mm256_permutexvar_epi16(load32(kPickIndices.pairs),
                                                _mm256_castsi128_si256(_mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b.mn)))));
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  __m512i isum[R], isum_hi[R];  // per row, the low nibbles' products and the high ones' (two chains)
  for (int i = 0; i < R; ++i) isum[i] = isum_hi[i] = _mm512_setzero_si512();
  for (int h = 0; h < 2; ++h) {
    const __m512i bytes = _mm512_loadu_si512(b.qs + 64 * h);
    const __m512i lo = _mm512_and_si512(bytes, low4), hi = _mm512_and_si512(_mm512_srli_epi16(bytes, 4), low4);
    const __m512i sc_lo = _mm512_permutexvar_epi16(_mm512_load_si512(kPickIndices.lo[h]), scales);
    const __m512i sc_hi = _mm512_permutexvar_epi16(_mm512_load_si512(kPickIndices.hi[h]), scales);
    add_128<R>(lo, hi, sc_lo, sc_hi, x, v0 + 128 * h, isum, isum_hi);
  }
  const float d = half(b.d), dmin = half(b.dmin);
  for (int i = 0; i < R; ++i) {
    const __m512i both = _mm512_add_epi32(isum[i], isum_hi[i]);
    const __m256i sum = _mm256_add_epi32(_mm512_castsi512_si256(both), _mm512_extracti64x4_epi64(both, 1));
    const float xs = x.scale(i, v0);
    const __m256i msum = _mm256_madd_epi16(mins, x.bsums(i, v0));
    acc.v[i][0] = _mm256_fmadd_ps(_mm256_set1_ps(d * xs), _mm256_cvtepi32_ps(sum), acc.v[i][0]);
    acc.v[i][1] = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * xs), _mm256_cvtepi32_ps(msum), acc.v[i][1]);
  }
}
#else
// 32 values from v against lo (low nibbles) and 32 from v + 64 against hi: add_128's half, for AVX2
template <int R>
inline void add_64(__m256i lo, __m256i hi, __m256i sc_lo, __m256i sc_hi, const Rows256<R>& x, int64_t v, __m256i* isum,
                   __m256i* isum_hi) {
  for (int i = 0; i < R; ++i) {
    const int8_t* xq = x.q(i, v);
    isum[i] = add_madd(isum[i], _mm256_maddubs_epi16(lo, load32(xq)), sc_lo);
    isum_hi[i] = add_madd(isum_hi[i], _mm256_maddubs_epi16(hi, load32(xq + 64)), sc_hi);
  }
}

template <int L, int R>
inline void add_block(const BlockQ4_KR& b, const Rows256<R>& x, int64_t v0, Acc<R>& acc) {
  const __m256i scales = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b.sc))));
  const __m128i m8 = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b.mn)));
  const __m256i mins = _mm256_set_m128i(_mm_unpackhi_epi16(m8, m8), _mm_unpacklo_epi16(m8, m8));
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  __m256i isum[R], isum_hi[R];
  for (int i = 0; i < R; ++i) isum[i] = isum_hi[i] = _mm256_setzero_si256();
  for (int c = 0; c < 4; ++c) {  // bytes 32c..: values 128h + 32e (low nibbles) and + 64 (high), h = c / 2, e = c % 2
    const int h = c / 2, e = c % 2;
    const __m256i bytes = load32(b.qs + 32 * c);
    const __m256i lo = _mm256_and_si256(bytes, low4), hi = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low4);
    const __m256i sc_lo = _mm256_shuffle_epi8(scales, load32(kPick.same[4 * h + e]));
    const __m256i sc_hi = _mm256_shuffle_epi8(scales, load32(kPick.same[4 * h + 2 + e]));
    add_64<R>(lo, hi, sc_lo, sc_hi, x, v0 + 128 * h + 32 * e, isum, isum_hi);
  }
  const float d = half(b.d), dmin = half(b.dmin);
  for (int i = 0; i < R; ++i) {
    const float xs = x.scale(i, v0);
    const __m256i msum = _mm256_madd_epi16(mins, x.bsums(i, v0));
    acc.v[i][0] = _mm256_fmadd_ps(_mm256_set1_ps(d * xs), _mm256_cvtepi32_ps(_mm256_add_epi32(isum[i], isum_hi[i])), acc.v[i][0]);
    acc.v[i][1] = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * xs), _mm256_cvtepi32_ps(msum), acc.v[i][1]);
  }
}
#endif

// Q6_K: (q - 32) * x as q * x minus 32 times the sums of x, every product times its int8 sub-scale in int32
template <int L, int R>
inline void add_block(const BlockQ6_K& b, const Rows256<R>& x, int64_t v0, Acc<R>& acc) {
  const float d = half(b.d);
  const __m128i scale_bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales));
  const __m256i scales16 = _mm256_cvtepi8_epi16(scale_bytes);  // the sixteen sub-scales, one per 16 values
  const __m256i low4 = _mm256_set1_epi8(0x0f), low2 = _mm256_set1_epi8(3);
  __m256i isum[R], isum_odd[R];  // per row, chunks t even and odd apart (two chains of multiply-adds)
  for (int i = 0; i < R; ++i) isum[i] = isum_odd[i] = _mm256_setzero_si256();
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
        __m256i& sum = t % 2 ? isum_odd[i] : isum[i];
        sum = add_madd(sum, _mm256_maddubs_epi16(u[t], xq), scales);
      }
    }
  }
  for (int i = 0; i < R; ++i) isum[i] = _mm256_add_epi32(isum[i], isum_odd[i]);
  for (int i = 0; i < R; ++i) {
    const __m256i offset = _mm256_slli_epi32(_mm256_madd_epi16(scales16, x.bsums(i, v0)), 5);  // 32 * sc * sum
    acc.v[i][L] = _mm256_fmadd_ps(_mm256_set1_ps(d * x.scale(i, v0)),
                                           _mm256_cvtepi32_ps(_mm256_sub_epi32(isum[i], offset)), acc.v[i][L]);
  }
}

// The regrouped Q6_K (BlockQ6_KR): as Q6_K, each load of the low bits pairing with contiguous x, the top two
// bits of values 64p + i in bits 2p of qh's byte i, moved to bits 4-5 (the 0x30 of the 6-bit value)
template <int P, class V>
inline V q6_top_bits(V qh, V top2) {
  if constexpr (sizeof(V) == 64) {
    if constexpr (P == 0) return _mm512_and_si512(_mm512_slli_epi16(qh, 4), top2);
    else if constexpr (P == 1) return _mm512_and_si512(_mm512_slli_epi16(qh, 2), top2);
    else if constexpr (P == 2) return _mm512_and_si512(qh, top2);
    else return _mm512_and_si512(_mm512_srli_epi16(qh, 2), top2);
  } else {
    if constexpr (P == 0) return _mm256_and_si256(_mm256_slli_epi16(qh, 4), top2);
    else if constexpr (P == 1) return _mm256_and_si256(_mm256_slli_epi16(qh, 2), top2);
    else if constexpr (P == 2) return _mm256_and_si256(qh, top2);
    else return _mm256_and_si256(_mm256_srli_epi16(qh, 2), top2);
  }
}

#ifdef VIREO_GGUF_VNNI
template <int R, int H>
inline void add_q6k_half(const BlockQ6_KR& b, __m512i qh, __m512i scales, const Rows256<R>& x, int64_t v0, __m512i* isum,
                         __m512i* isum_hi) {
  const __m512i low4 = _mm512_set1_epi8(0x0f), top2 = _mm512_set1_epi8(0x30);
  const __m512i ql = _mm512_loadu_si512(b.ql + 64 * H);
  const __m512i lo = _mm512_or_si512(_mm512_and_si512(ql, low4), q6_top_bits<2 * H>(qh, top2));
  const __m512i hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), low4), q6_top_bits<2 * H + 1>(qh, top2));
  const __m512i sc_lo = _mm512_permutexvar_epi16(_mm512_load_si512(kPickIndices.q6_lo[H]), scales);
  const __m512i sc_hi = _mm512_permutexvar_epi16(_mm512_load_si512(kPickIndices.q6_hi[H]), scales);
  add_128<R>(lo, hi, sc_lo, sc_hi, x, v0 + 128 * H, isum, isum_hi);
}

template <int L, int R>
inline void add_block(const BlockQ6_KR& b, const Rows256<R>& x, int64_t v0, Acc<R>& acc) {
  const __m256i scales16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales)));
  const __m512i scales = _mm512_castsi256_si512(scales16), qh = _mm512_loadu_si512(b.qh);
  __m512i isum[R], isum_hi[R];
  for (int i = 0; i < R; ++i) isum[i] = isum_hi[i] = _mm512_setzero_si512();
  add_q6k_half<R, 0>(b, qh, scales, x, v0, isum, isum_hi);
  add_q6k_half<R, 1>(b, qh, scales, x, v0, isum, isum_hi);
  const float d = half(b.d);
  for (int i = 0; i < R; ++i) {
    const __m512i both = _mm512_add_epi32(isum[i], isum_hi[i]);
    const __m256i sum = _mm256_add_epi32(_mm512_castsi512_si256(both), _mm512_extracti64x4_epi64(both, 1));
    const __m256i offset = _mm256_slli_epi32(_mm256_madd_epi16(scales16, x.bsums(i, v0)), 5);  // 32 * sc * sum
    acc.v[i][L] = _mm256_fmadd_ps(_mm256_set1_ps(d * x.scale(i, v0)), _mm256_cvtepi32_ps(_mm256_sub_epi32(sum, offset)), acc.v[i][L]);
  }
}
#else
template <int R, int C>
inline void add_q6k_quarter(const BlockQ6_KR& b, const __m256i* half_scales, const Rows256<R>& x, int64_t v0, __m256i* isum,
                            __m256i* isum_hi) {
  constexpr int h = C / 2, e = C % 2;  // bytes 32C..: values 128h + 32e + j (low nibbles) and + 64 (high)
  const __m256i low4 = _mm256_set1_epi8(0x0f), top2 = _mm256_set1_epi8(0x30);
  const __m256i ql = load32(b.ql + 32 * C), qh = load32(b.qh + 32 * e);
  const __m256i lo = _mm256_or_si256(_mm256_and_si256(ql, low4), q6_top_bits<2 * h>(qh, top2));
  const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql, 4), low4), q6_top_bits<2 * h + 1>(qh, top2));
  const __m256i sc_lo = _mm256_shuffle_epi8(half_scales[h], load32(kPick.pair[e]));
  const __m256i sc_hi = _mm256_shuffle_epi8(half_scales[h], load32(kPick.pair[2 + e]));
  add_64<R>(lo, hi, sc_lo, sc_hi, x, v0 + 128 * h + 32 * e, isum, isum_hi);
}

template <int L, int R>
inline void add_block(const BlockQ6_KR& b, const Rows256<R>& x, int64_t v0, Acc<R>& acc) {
  const __m128i scale_bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales));
  const __m256i scales16 = _mm256_cvtepi8_epi16(scale_bytes);
  const __m256i half_scales[2] = {_mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(scale_bytes)),
                                  _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(_mm_srli_si128(scale_bytes, 8)))};
  __m256i isum[R], isum_hi[R];
  for (int i = 0; i < R; ++i) isum[i] = isum_hi[i] = _mm256_setzero_si256();
  add_q6k_quarter<R, 0>(b, half_scales, x, v0, isum, isum_hi);
  add_q6k_quarter<R, 1>(b, half_scales, x, v0, isum, isum_hi);
  add_q6k_quarter<R, 2>(b, half_scales, x, v0, isum, isum_hi);
  add_q6k_quarter<R, 3>(b, half_scales, x, v0, isum, isum_hi);
  const float d = half(b.d);
  for (int i = 0; i < R; ++i) {
    const __m256i offset = _mm256_slli_epi32(_mm256_madd_epi16(scales16, x.bsums(i, v0)), 5);
    const __m256i sum = _mm256_sub_epi32(_mm256_add_epi32(isum[i], isum_hi[i]), offset);
    acc.v[i][L] = _mm256_fmadd_ps(_mm256_set1_ps(d * x.scale(i, v0)), _mm256_cvtepi32_ps(sum), acc.v[i][L]);
  }
}
#endif

// One row of W (`wrow`, nblocks blocks) against R rows of x from r0 on: y[(r0 + i) * n]
template <int R, class Block, class Activations>
inline void dot_row(const Block* wrow, int64_t nblocks, const Activations& xq, int64_t r0, int64_t k, float* y,
                    int64_t n) {
  using RowsR = std::conditional_t<Block::kValues == 256, Rows256<R>, Rows<R>>;
  const RowsR rows = [&] {
    if constexpr (Block::kValues == 256) return RowsR{xq, r0, k};
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
  for (int i = 0; i < R; ++i) y[(r0 + i) * n] = acc.total(i);
}

// Rows [begin, end) of W against the m rows of x (rounded per block of 32, or per 256 for the K-quants),
// each row of W once against every block of kRowBlock rows of x while it is in cache: y [m, n]
template <class Block, class Activations>
void dot_rows(const Block* w, int64_t begin, int64_t end, int64_t nblocks, const Activations& xq, int64_t m,
              int64_t k, float* y, int64_t n) {
  for (int64_t row = begin; row < end; ++row) {
    const Block* wrow = w + row * nblocks;
    int64_t r = 0;
    for (; r + kRowBlock <= m; r += kRowBlock) dot_row<kRowBlock>(wrow, nblocks, xq, r, k, y + row, n);
    for (; r < m; ++r) dot_row<1>(wrow, nblocks, xq, r, k, y + row, n);
  }
}
