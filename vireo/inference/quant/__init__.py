"""Weight-only int8 / int4 quantization: the methods (RTN, AWQ, GPTQ), the one checkpoint format
(vLLM's AWQ / GPTQ tensor layouts, so vLLM serves the folders too) and the one quantized linear.
`docs/quantization.md` describes all three."""
