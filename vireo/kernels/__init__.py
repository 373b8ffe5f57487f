"""Triton kernels with torch references; CUDA tensors run Triton, CPU tensors the reference.

- `quant`: `w8a16_matmul(x, Int8Weight)`, `w4a16_matmul(x, Int4Weight)` (formats in `qweight`)
- `gemv_layout` / `gemv_kmajor`: a K-major re-packing of an int8 weight (made at load) and
  the decode GEMV that reads it; `quant_mma`: the int4 small-M tensor-core kernel over the
  layout's MMA variant
- `attention`: `prefill_attention`, `decode_attention` over a paged KV cache, `store_kv_cache`
- `fused`: `rms_norm` (+ residual), `apply_rope` / `rope_cos_sin`, `silu_and_mul`
- `dispatch`: `force_triton` / `triton_forced` (tests run Triton on CPU under TRITON_INTERPRET=1);
  each op's `launch_*` entry runs Triton for callers that already chose it
- `tuning`: which kernel and tiles, from a tuned table per device (`configs/`)
"""
