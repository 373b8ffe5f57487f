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
  alignas(32) int8_t same[8][32]{};
  alignas(32) int8_t pair[4][32]{};
  constexpr PickMasks() {
    for (int e = 0; e < 8; ++e)
      for (int byte = 0; byte < 32; ++byte) same[e][byte] = static_cast<int8_t>(2 * e + byte % 2);
    for (int t = 0; t < 4; ++t)
      for (int byte = 0; byte < 32; ++byte) pair[t][byte] = static_cast<int8_t>(2 * (2 * t + byte / 16) + byte % 2);
  }
};
inline constexpr PickMasks kPick{};  // constant data: no code runs at load (see kPickIndices)

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
  alignas(64) int16_t lo[2][32]{};
  alignas(64) int16_t hi[2][32]{};
  alignas(32) int16_t pairs[16]{};
  alignas(64) int16_t q6_lo[2][32]{};  // Q6_K's sixteen sub-scales, one per 16 values: 8h..8h + 3 (low nibbles)
  alignas(64) int16_t q6_hi[2][32]{};  // and 8h + 4..8h + 7 (high nibbles), each over eight int16 lanes
  constexpr PickIndices() {
    for (int h = 0; h < 2; ++h)
      for (int t = 0; t < 32; ++t) {
        lo[h][t] = static_cast<int16_t>(4 * h + t / 16), hi[h][t] = static_cast<int16_t>(4 * h + 2 + t / 16);
        q6_lo[h][t] = static_cast<int16_t>(8 * h + t / 8), q6_hi[h][t] = static_cast<int16_t>(8 * h + 4 + t / 8);
      }
    for (int t = 0; t < 16; ++t) pairs[t] = static_cast<int16_t>(t / 2);
  }
};
// constexpr: the tables are the library's constant data. A run-time constructor of this namespace would be compiled
// for AVX-512 (vectorized: vmovdqa64 on zmm) and run when the library loads, killing the process with SIGILL on
// AVX2-only CPUs (Zen 3) before any dispatch could choose the AVX2 bodies.
inline constexpr PickIndices kPickIndices{};

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

// ---- the interleaved layouts (BlockQ4_KX16, BlockQ6_KX16): sixteen rows of W in the lanes of one register ----
// Lanes: sixteen int32 (or the 64 bytes they are made of) - one 512-bit register on VNNI, two 256-bit ones on
// AVX2, where vpdpbusd's work is maddubs, its pair sums added in int16 (`partial_dot4`) and widened by one madd
// per scale group (exact: the weights' bytes are at most 63, and the bounds at partial_dot4 hold)
#ifdef VIREO_GGUF_VNNI
using Lanes = __m512i;
using FloatLanes = __m512;
inline Lanes lanes_zero() { return _mm512_setzero_si512(); }
inline Lanes load_lanes(const void* p) { return _mm512_loadu_si512(p); }
inline Lanes lanes_and(Lanes a, Lanes b) { return _mm512_and_si512(a, b); }
inline Lanes lanes_or(Lanes a, Lanes b) { return _mm512_or_si512(a, b); }
inline Lanes bytes_of(int8_t v) { return _mm512_set1_epi8(v); }
template <int S>
inline Lanes shift16(Lanes a) {  // each int16 shifted left (S > 0) or right, logically
  if constexpr (S > 0) return _mm512_slli_epi16(a, S);
  else return _mm512_srli_epi16(a, -S);
}
inline Lanes add32(Lanes a, Lanes b) { return _mm512_add_epi32(a, b); }
inline Lanes sub32(Lanes a, Lanes b) { return _mm512_sub_epi32(a, b); }
inline Lanes mul32(Lanes a, Lanes b) { return _mm512_mullo_epi32(a, b); }
inline Lanes low16_of_32(Lanes a) { return _mm512_srai_epi32(_mm512_slli_epi32(a, 16), 16); }
inline Lanes high16_of_32(Lanes a) { return _mm512_srai_epi32(a, 16); }
template <int S>
inline Lanes shl32(Lanes a) { return _mm512_slli_epi32(a, S); }
// acc + per lane the four products of u's unsigned bytes with the four signed bytes of x4
inline Lanes dot4(Lanes acc, Lanes u, int32_t x4) { return _mm512_dpbusd_epi32(acc, u, _mm512_set1_epi32(x4)); }
// A scale group's products before its scale (`partial_dot4`): int32 lanes here, vpdpbusd adds them there
inline Lanes partial_dot4(Lanes acc, Lanes u, int32_t x4) { return dot4(acc, u, x4); }
inline Lanes partial_add(Lanes a, Lanes b) { return add32(a, b); }
inline Lanes partial_scaled(Lanes p, Lanes scale) { return mul32(p, scale); }  // scale: int32 lanes
inline Lanes partial_sum(Lanes p) { return p; }
constexpr int kPartialDot4sOf6Bits = 4;  // int32 partials: Q6_K scales each pair of sub-blocks once
// acc + per lane the two products of its int16 pair with the int16 pair of p2
inline Lanes dot2(Lanes acc, Lanes pairs, int32_t p2) { return _mm512_dpwssd_epi32(acc, pairs, _mm512_set1_epi32(p2)); }
inline Lanes u8_to_32(const uint8_t* p) { return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
inline Lanes u8_to_16(const uint8_t* p) { return _mm512_cvtepu8_epi16(load32(p)); }
inline Lanes s8_to_16(const int8_t* p) { return _mm512_cvtepi8_epi16(load32(p)); }
// acc + per lane the four products of w's signed bytes with x4's, plus 128 times the sum of x4's bytes
// (kSignedOffset: vpdpbusd takes w + 128, unsigned; the caller takes 128 times x's sum off)
constexpr int kSignedOffset = 128;
inline Lanes dot4_signed(Lanes acc, Lanes w, int32_t x4) { return dot4(acc, _mm512_xor_si512(w, _mm512_set1_epi8(-128)), x4); }
// u with 16 added to byte i where bit i of `bits` is set (Q5_0's fifth bits)
inline Lanes add_fifth_bits(Lanes u, uint64_t bits) { return _mm512_mask_add_epi8(u, bits, u, _mm512_set1_epi8(16)); }
inline FloatLanes floats_zero() { return _mm512_setzero_ps(); }
// acc + c * s
inline FloatLanes fmadd_scalar(FloatLanes c, float s, FloatLanes acc) { return _mm512_fmadd_ps(c, _mm512_set1_ps(s), acc); }
inline FloatLanes halves(const uint16_t* p) { return _mm512_cvtph_ps(load32(p)); }
inline FloatLanes scaled_halves(const uint16_t* p, float s) { return _mm512_mul_ps(halves(p), _mm512_set1_ps(s)); }
// acc + scale * s * float(i)
inline FloatLanes fmadd_lanes(FloatLanes scale, float s, Lanes i, FloatLanes acc) {
  return _mm512_fmadd_ps(_mm512_mul_ps(scale, _mm512_set1_ps(s)), _mm512_cvtepi32_ps(i), acc);
}
inline void store_floats(float* y, FloatLanes v) { _mm512_storeu_ps(y, v); }
#else
struct Lanes {
  __m256i lo, hi;
};
struct FloatLanes {
  __m256 lo, hi;
};
template <class F>
inline Lanes each(Lanes a, Lanes b, F f) { return {f(a.lo, b.lo), f(a.hi, b.hi)}; }
inline Lanes lanes_zero() { return {_mm256_setzero_si256(), _mm256_setzero_si256()}; }
inline Lanes load_lanes(const void* p) { return {load32(p), load32(static_cast<const uint8_t*>(p) + 32)}; }
inline Lanes lanes_and(Lanes a, Lanes b) { return each(a, b, [](__m256i x, __m256i y) { return _mm256_and_si256(x, y); }); }
inline Lanes lanes_or(Lanes a, Lanes b) { return each(a, b, [](__m256i x, __m256i y) { return _mm256_or_si256(x, y); }); }
inline Lanes bytes_of(int8_t v) { return {_mm256_set1_epi8(v), _mm256_set1_epi8(v)}; }
template <int S>
inline Lanes shift16(Lanes a) {
  if constexpr (S > 0) return {_mm256_slli_epi16(a.lo, S), _mm256_slli_epi16(a.hi, S)};
  else return {_mm256_srli_epi16(a.lo, -S), _mm256_srli_epi16(a.hi, -S)};
}
inline Lanes add32(Lanes a, Lanes b) { return each(a, b, [](__m256i x, __m256i y) { return _mm256_add_epi32(x, y); }); }
inline Lanes sub32(Lanes a, Lanes b) { return each(a, b, [](__m256i x, __m256i y) { return _mm256_sub_epi32(x, y); }); }
inline Lanes low16_of_32(Lanes a) {
  return {_mm256_srai_epi32(_mm256_slli_epi32(a.lo, 16), 16), _mm256_srai_epi32(_mm256_slli_epi32(a.hi, 16), 16)};
}
inline Lanes high16_of_32(Lanes a) { return {_mm256_srai_epi32(a.lo, 16), _mm256_srai_epi32(a.hi, 16)}; }
template <int S>
inline Lanes shl32(Lanes a) { return {_mm256_slli_epi32(a.lo, S), _mm256_slli_epi32(a.hi, S)}; }
// A scale group's products before its scale (`partial_dot4`): maddubs' pair sums added in int16 lanes, two to a
// row, then one madd by the scale (partial_scaled) or by ones (partial_sum) instead of one madd per four values and
// a vpmulld. Exact while a partial holds at most 8 dot4s of values <= 15, 4 of values <= 31 or 2 of values <= 63
// (|x| <= 127: 8 * 2 * 15 * 127 = 30480, 4 * 2 * 31 * 127 = 31496, 2 * 2 * 63 * 127 = 32004; int16 holds 32767),
// which its callers keep to (Q6_K scales its partials every kPartialDot4sOf6Bits).
inline Lanes partial_dot4(Lanes acc, Lanes u, int32_t x4) {
  const __m256i x = _mm256_set1_epi32(x4);
  return {_mm256_add_epi16(acc.lo, _mm256_maddubs_epi16(u.lo, x)), _mm256_add_epi16(acc.hi, _mm256_maddubs_epi16(u.hi, x))};
}
inline Lanes partial_add(Lanes a, Lanes b) { return each(a, b, [](__m256i x, __m256i y) { return _mm256_add_epi16(x, y); }); }
inline Lanes partial_scaled(Lanes p, Lanes scale) {  // scale: int32 lanes within int16, one per row
  // the scale's low int16 in both halves of its lane (blend: the odd int16 from the shifted copy)
  auto one = [](__m256i v, __m256i sc) { return _mm256_madd_epi16(v, _mm256_blend_epi16(sc, _mm256_slli_epi32(sc, 16), 0xaa)); };
  return {one(p.lo, scale.lo), one(p.hi, scale.hi)};
}
inline Lanes partial_sum(Lanes p) {
  const __m256i ones = _mm256_set1_epi16(1);
  return {_mm256_madd_epi16(p.lo, ones), _mm256_madd_epi16(p.hi, ones)};
}
constexpr int kPartialDot4sOf6Bits = 2;
inline Lanes dot2(Lanes acc, Lanes pairs, int32_t p2) {
  const __m256i p = _mm256_set1_epi32(p2);
  return {_mm256_add_epi32(acc.lo, _mm256_madd_epi16(pairs.lo, p)), _mm256_add_epi32(acc.hi, _mm256_madd_epi16(pairs.hi, p))};
}
inline Lanes u8_to_32(const uint8_t* p) {
  return {_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))),
          _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + 8)))};
}
inline Lanes u8_to_16(const uint8_t* p) {
  return {_mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))),
          _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16)))};
}
inline Lanes s8_to_16(const int8_t* p) {
  return {_mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))),
          _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16)))};
}
// acc + per lane the four products of w's signed bytes with x4's: |w| by x with w's sign, unsigned by signed
// as maddubs wants (no offset to take off: kSignedOffset 0)
constexpr int kSignedOffset = 0;
inline Lanes dot4_signed(Lanes acc, Lanes w, int32_t x4) {
  const __m256i x = _mm256_set1_epi32(x4), ones = _mm256_set1_epi16(1);
  auto one = [&](__m256i a, __m256i v) {
    return _mm256_add_epi32(a, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(v, v), _mm256_sign_epi8(x, v)), ones));
  };
  return {one(acc.lo, w.lo), one(acc.hi, w.hi)};
}
inline Lanes add_fifth_bits(Lanes u, uint64_t bits) {
  const __m256i sixteen = _mm256_set1_epi8(16);
  return {_mm256_or_si256(u.lo, _mm256_and_si256(bits_to_bytes(static_cast<uint32_t>(bits)), sixteen)),
          _mm256_or_si256(u.hi, _mm256_and_si256(bits_to_bytes(static_cast<uint32_t>(bits >> 32)), sixteen))};
}
inline FloatLanes floats_zero() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
inline FloatLanes fmadd_scalar(FloatLanes c, float s, FloatLanes acc) {
  const __m256 b = _mm256_set1_ps(s);
  return {_mm256_fmadd_ps(c.lo, b, acc.lo), _mm256_fmadd_ps(c.hi, b, acc.hi)};
}
inline FloatLanes halves(const uint16_t* p) {
  return {_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))),
          _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8)))};
}
inline FloatLanes scaled_halves(const uint16_t* p, float s) {
  const FloatLanes h = halves(p);
  const __m256 b = _mm256_set1_ps(s);
  return {_mm256_mul_ps(h.lo, b), _mm256_mul_ps(h.hi, b)};
}
inline FloatLanes fmadd_lanes(FloatLanes scale, float s, Lanes i, FloatLanes acc) {
  const __m256 b = _mm256_set1_ps(s);
  return {_mm256_fmadd_ps(_mm256_mul_ps(scale.lo, b), _mm256_cvtepi32_ps(i.lo), acc.lo),
          _mm256_fmadd_ps(_mm256_mul_ps(scale.hi, b), _mm256_cvtepi32_ps(i.hi), acc.hi)};
}
inline void store_floats(float* y, FloatLanes v) { _mm256_storeu_ps(y, v.lo), _mm256_storeu_ps(y + 8, v.hi); }
#endif

inline int32_t four_bytes(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Low-nibble (or low-bits) values `lo` against four values of x from v, `hi` against four from v + 16, for each of
// R rows of x: the rows' two chains of a scale group's partial products (`partial_dot4`)
template <int R, class RowsR>
inline void add_pairs(Lanes lo, Lanes hi, const RowsR& x, int64_t v, Lanes* sum_lo, Lanes* sum_hi) {
  for (int i = 0; i < R; ++i) {
    const int8_t* xq = x.q(i, v);
    sum_lo[i] = partial_dot4(sum_lo[i], lo, four_bytes(xq));
    sum_hi[i] = partial_dot4(sum_hi[i], hi, four_bytes(xq + 16));
  }
}

// Q4_K, sixteen rows: per sub-block of 32 the rows' integer dot products (low nibbles and high apart: two
// chains), times the sub-scales lane by lane; the minima against x's sums per 32, in int16 pairs
template <int R>
inline void add_group_block(const BlockQ4_KX16& b, const Rows256<R>& x, int64_t v0, FloatLanes* acc) {
  const Lanes low4 = bytes_of(0x0f);
  Lanes isum[R];
  for (int i = 0; i < R; ++i) isum[i] = lanes_zero();
  for (int s = 0; s < 8; ++s) {
    Lanes sum_lo[R], sum_hi[R];
    for (int i = 0; i < R; ++i) sum_lo[i] = sum_hi[i] = lanes_zero();
    for (int c = 0; c < 4; ++c) {
      const Lanes bytes = load_lanes(b.qs[s][c]);
      const Lanes lo = lanes_and(bytes, low4), hi = lanes_and(shift16<-4>(bytes), low4);
      add_pairs<R>(lo, hi, x, v0 + 32 * s + 4 * c, sum_lo, sum_hi);  // 8 dot4s of values <= 15
    }
    const Lanes scale = u8_to_32(b.sc[s]);
    for (int i = 0; i < R; ++i) isum[i] = add32(isum[i], partial_scaled(partial_add(sum_lo[i], sum_hi[i]), scale));
  }
  const FloatLanes d = halves(b.d), dmin = halves(b.dmin);
  for (int i = 0; i < R; ++i) {
    const int16_t* bs = x.x.bsums.data() + ((x.r0 + i) * x.k + v0) / 16;  // x's integer sums per 16
    Lanes msum = lanes_zero();
    for (int p = 0; p < 4; ++p) {
      const int32_t first = bs[4 * p] + bs[4 * p + 1], second = bs[4 * p + 2] + bs[4 * p + 3];  // per 32
      msum = dot2(msum, u8_to_16(b.mn[p][0]), static_cast<int32_t>((first & 0xffff) | (static_cast<uint32_t>(second) << 16)));
    }
    const float xs = x.scale(i, v0);
    acc[i] = fmadd_lanes(d, xs, isum[i], acc[i]);
    acc[i] = fmadd_lanes(dmin, -xs, msum, acc[i]);
  }
}

// Q6_K, sixteen rows: per pair of sub-blocks of 16 (2q from the low nibbles, 2q + 1 from the high) the rows'
// integer dot products with the 6-bit values, times the sub-scales lane by lane; the -32 against x's sums per 16
template <int R>
inline void add_group_block(const BlockQ6_KX16& b, const Rows256<R>& x, int64_t v0, FloatLanes* acc) {
  const Lanes low4 = bytes_of(0x0f), top2 = bytes_of(0x30);
  Lanes isum[R], offset[R];
  for (int i = 0; i < R; ++i) isum[i] = offset[i] = lanes_zero();
  for (int q = 0; q < 8; ++q) {
    const Lanes pairs = s8_to_16(b.pairs[q].sc[0]);  // lane r: sub-scales 2q, 2q + 1 of row r as int16
    const Lanes sc_lo = low16_of_32(pairs), sc_hi = high16_of_32(pairs);
    Lanes sum_lo[R], sum_hi[R];
    for (int i = 0; i < R; ++i) sum_lo[i] = sum_hi[i] = lanes_zero();
    for (int e = 0; e < 2; ++e) {
      const Lanes top = load_lanes(b.pairs[q].qh[e]);
      for (int half = 0; half < 2; ++half) {
        const int c = 2 * e + half;
        const Lanes low = load_lanes(b.pairs[q].ql[c]);
        const Lanes lo = lanes_or(lanes_and(low, low4), lanes_and(half ? top : shift16<4>(top), top2));
        const Lanes hi = lanes_or(lanes_and(shift16<-4>(low), low4), lanes_and(half ? shift16<-2>(top) : shift16<2>(top), top2));
        add_pairs<R>(lo, hi, x, v0 + 32 * q + 4 * c, sum_lo, sum_hi);
      }
      if (e == 1 || kPartialDot4sOf6Bits == 2) {  // the partials of values <= 63 scaled and emptied
        for (int i = 0; i < R; ++i) {
          isum[i] = add32(isum[i], add32(partial_scaled(sum_lo[i], sc_lo), partial_scaled(sum_hi[i], sc_hi)));
          sum_lo[i] = sum_hi[i] = lanes_zero();
        }
      }
    }
    for (int i = 0; i < R; ++i) {
      int32_t sums;  // x's integer sums over sub-blocks 2q and 2q + 1, as an int16 pair
      std::memcpy(&sums, x.x.bsums.data() + ((x.r0 + i) * x.k + v0) / 16 + 2 * q, 4);
      offset[i] = dot2(offset[i], pairs, sums);
    }
  }
  const FloatLanes d = halves(b.d);
  for (int i = 0; i < R; ++i) acc[i] = fmadd_lanes(d, x.scale(i, v0), sub32(isum[i], shl32<5>(offset[i])), acc[i]);
}

// The blocks of 32 values, sixteen rows: per row of x the rows' integer dot products (two chains), then one
// float multiply-add by the rows' scales times x's, and the offset (c, per row of W) times x's rounded sum
template <int R>
inline void add_scaled32(const Lanes* sum_lo, const Lanes* sum_hi, FloatLanes d, FloatLanes c, const Rows<R>& x,
                         int64_t v0, FloatLanes* acc) {
  for (int i = 0; i < R; ++i) {
    acc[i] = fmadd_lanes(d, *x.scale(i, v0), add32(sum_lo[i], sum_hi[i]), acc[i]);
    acc[i] = fmadd_scalar(c, *x.qsum(i, v0), acc[i]);
  }
}

template <int R>
inline void add_group_block(const BlockQ8_0X16& b, const Rows<R>& x, int64_t v0, FloatLanes* acc) {
  Lanes sum[2][R];
  for (int i = 0; i < R; ++i) sum[0][i] = sum[1][i] = lanes_zero();
  for (int c = 0; c < 8; ++c) {
    const Lanes w = load_lanes(b.qs[c]);
    for (int i = 0; i < R; ++i) sum[c % 2][i] = dot4_signed(sum[c % 2][i], w, four_bytes(x.q(i, v0 + 4 * c)));
  }
  add_scaled32<R>(sum[0], sum[1], halves(b.d), scaled_halves(b.d, -static_cast<float>(kSignedOffset)), x, v0, acc);
}

template <int R>
inline void add_group_block(const BlockQ4_1X16& b, const Rows<R>& x, int64_t v0, FloatLanes* acc) {
  const Lanes low4 = bytes_of(0x0f);
  Lanes sum_lo[R], sum_hi[R];
  for (int i = 0; i < R; ++i) sum_lo[i] = sum_hi[i] = lanes_zero();
  for (int c = 0; c < 4; ++c) {
    const Lanes bytes = load_lanes(b.qs[c]);
    const Lanes lo = lanes_and(bytes, low4), hi = lanes_and(shift16<-4>(bytes), low4);
    add_pairs<R>(lo, hi, x, v0 + 4 * c, sum_lo, sum_hi);  // 4 dot4s of values <= 15 a chain
  }
  for (int i = 0; i < R; ++i) sum_lo[i] = partial_sum(sum_lo[i]), sum_hi[i] = partial_sum(sum_hi[i]);
  add_scaled32<R>(sum_lo, sum_hi, halves(b.d), halves(b.m), x, v0, acc);
}

template <int R>
inline void add_group_block(const BlockQ5_0X16& b, const Rows<R>& x, int64_t v0, FloatLanes* acc) {
  const Lanes low4 = bytes_of(0x0f);
  Lanes sum_lo[R], sum_hi[R];
  for (int i = 0; i < R; ++i) sum_lo[i] = sum_hi[i] = lanes_zero();
  for (int c = 0; c < 4; ++c) {
    const Lanes bytes = load_lanes(b.qs[c]);
    const Lanes lo = add_fifth_bits(lanes_and(bytes, low4), b.qh[c][0]);
    const Lanes hi = add_fifth_bits(lanes_and(shift16<-4>(bytes), low4), b.qh[c][1]);
    add_pairs<R>(lo, hi, x, v0 + 4 * c, sum_lo, sum_hi);  // 4 dot4s of values <= 31 a chain
  }
  for (int i = 0; i < R; ++i) sum_lo[i] = partial_sum(sum_lo[i]), sum_hi[i] = partial_sum(sum_hi[i]);
  add_scaled32<R>(sum_lo, sum_hi, halves(b.d), scaled_halves(b.d, -16.f), x, v0, acc);
}

// Groups [begin, end) of sixteen rows of W against rows [x0, x1) of x (rounded per 32, or per 256 for the
// K-quants), kRowBlock rows of x at a time: y [m, n]
template <class Block, class Activations>
void dot_groups(const Block* w, int64_t begin, int64_t end, int64_t nblocks, const Activations& xq, int64_t x0,
                int64_t x1, int64_t k, float* y, int64_t n) {
  constexpr int kRows = Block::kRows;
  for (int64_t g = begin; g < end; ++g) {
    const Block* group = w + g * nblocks;
    // the next group's bytes asked for while this one is worked on (block j's during block j, on the first pass
    // over x): at a few rows of x the multiply-adds and the reads from memory then overlap instead of taking turns
    const char* next = g + 1 < end ? reinterpret_cast<const char*>(group + nblocks) : nullptr;
    for_row_blocks(x1 - x0, [&](auto rows_in_block, int64_t first) {
      constexpr int R = decltype(rows_in_block)::value;
      const int64_t r0 = x0 + first;
      using RowsR = std::conditional_t<Block::kValues == 256, Rows256<R>, Rows<R>>;
      const RowsR rows = [&] {
        if constexpr (Block::kValues == 256) return RowsR{xq, r0, k};
        else return RowsR{xq, r0, k, k / kGroup};
      }();
      FloatLanes acc[R];
      for (int i = 0; i < R; ++i) acc[i] = floats_zero();
      for (int64_t j = 0; j < nblocks; ++j) {
        if (first == 0 && next != nullptr)
          for (size_t line = 0; line < sizeof(Block); line += 64) _mm_prefetch(next + j * sizeof(Block) + line, _MM_HINT_T0);
        add_group_block<R>(group[j], rows, j * Block::kValues, acc);
      }
      for (int i = 0; i < R; ++i) store_floats(y + (r0 + i) * n + g * kRows, acc[i]);
    });
  }
}
