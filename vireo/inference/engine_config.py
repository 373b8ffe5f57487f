"""The one engine configuration: what every backend is built from, typed and checked once.

The platform's `Settings.engine` is this object (read from `VIREO_*` variables by
`vireo/platform/settings.py`); `vireo bench` and `vireo eval` build theirs the same way. `auto`
values are made concrete for the machine by `resolved()`, which every local engine calls first, so
a `cuda` setting on a machine without CUDA fails at startup with a message, not deep inside torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vireo.inference.api import EngineError

Backend = Literal["native", "vllm", "hf", "openai"]
Device = Literal["auto", "cpu", "cuda"]
DType = Literal["auto", "float32", "bfloat16", "float16"]
Quantization = Literal["none", "int8", "int4", "gguf"]
Speculation = Literal["auto", "off", "prompt_lookup", "draft"]

LOCAL_BACKENDS = ("native", "hf")  # the model runs in Vireo's own process (the others: vLLM's, a server's)
DEFAULT_CONTEXT = 2048  # a model config that names no max_position_embeddings
CPU_TOKENS_PER_STEP = 512
CUDA_TOKENS_PER_STEP = 2048


class EngineConfig(BaseModel):
    """An engine's settings: backend, model, where and how it runs, its limits and speculation."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    backend: Backend = "native"
    model: str = "smollm2-135m"
    device: Device = "auto"  # auto: CUDA when torch sees a GPU, else CPU
    dtype: DType = "auto"  # auto: bfloat16 on CUDA, float32 on CPU
    # none: the weights as they are (a `vireo quantize` folder is served quantized whatever this says);
    # int8 / int4: a plain model's linears rounded to nearest (RTN) at load;
    # gguf: a model converted from a GGUF file, its weights read from that file as it is quantized
    # (Q4 blocks as int4, other block types as int8 per channel; CPU only, docs/quantization.md)
    quantization: Quantization = "none"
    cuda_graphs: bool = True  # decode steps replayed as CUDA graphs (CUDA only)
    # native engine, CUDA, one GPU: prefill and mixed steps replayed as CUDA graphs of their pieces between
    # attention calls, per padded token count (`native/worker/piecewise_graphs.py`): a 128-token prefill of a
    # Llama-8B shape on an H100 24 -> 7 ms (benchmarks/results/gpu/piecewise-steps-h100-2026-12-07.json)
    piecewise_graphs: bool = True
    overlap_decode: bool | None = None  # queue decode step n+1 before n's tokens land; None: on CUDA
    dense_gemv: bool = True  # 16-bit decode linears through the one-launch Triton GEMV (CUDA only)
    # CPU: our AVX2 kernels where they build (int8-activation quantized linears, paged decode attention)
    cpu_kernels: bool = True
    # native / hf: the engine in a process of its own, apart from the worker's apps and Redis writes
    # (engine_process.py); None: on CUDA, where the engine outruns one interpreter shared with them
    own_process: bool | None = None
    max_batch: int = Field(32, ge=1)
    # native engine: while decodes run, a new request waits up to this long (times the share of max_batch
    # running) for others to join it, so that staggered arrivals are prefilled together in one mixed step
    # instead of one each (each such step runs without CUDA graphs);
    # 0: every arrival is admitted at once
    admission_window_ms: float = Field(0.0, ge=0)
    # native engine: the most tokens one step computes, decodes and prompt tokens together (a longer prompt,
    # or more arrivals than fit, are prefilled over several steps, chunked); bounds how long running decodes
    # wait behind prompts. None: 512 on a CPU, where a step's time grows with its tokens from the first;
    # 2048 on CUDA, where a step of 512 barely fills the card (see CUDA_TOKENS_PER_STEP)
    max_tokens_per_step: int | None = Field(None, ge=1)
    # native engine: one model over this many devices (GPUs; CPU processes where there is no GPU),
    # heads and MLP split between them (`native/parallel/`)
    tensor_parallel_size: int = Field(1, ge=1)
    max_model_len: int | None = Field(8192, ge=1)  # None: the model's own context
    threads: int | None = Field(None, ge=1)  # torch CPU threads; None: torch's choice
    # native engine: KV cache of kv_cache_tokens slots, or (CUDA) this share of free GPU memory
    block_size: int = Field(16, ge=1)
    kv_cache_tokens: int = Field(65536, ge=1)
    kv_cache_memory_fraction: float | None = Field(None, gt=0, le=1)
    # native engine: what the KV cache holds. auto: float16 on a CPU where our kernels run (`cpu_kernels`:
    # half the memory and the bytes attention reads, as llama.cpp's default f16 cache), else the model's
    # dtype; another dtype on a CPU is read back through a gather; on CUDA only the model's dtype (the Triton
    # kernels read and write the cache in it)
    kv_cache_dtype: DType = "auto"
    prefix_caching: bool = True
    speculation: Speculation = "auto"  # auto: per app preference
    draft_model: str | None = None
    num_speculative_tokens: int = Field(8, ge=1)  # most guesses per step: native adapts below it, vLLM uses it
    # the openai backend: any OpenAI-compatible server
    openai_base_url: str | None = None
    openai_api_key: str | None = None
    openai_model: str | None = None  # the server's name for the model (default: `model`)
    home: Path | None = None  # the model registry's folder (None: the default home)

    @model_validator(mode="after")
    def _tensor_parallel_is_native(self) -> EngineConfig:
        if self.tensor_parallel_size > 1 and self.backend != "native":
            raise ValueError(
                f"tensor_parallel_size {self.tensor_parallel_size} is for the native engine; the {self.backend} "
                "backend shards its model itself (vLLM: its own --tensor-parallel-size)"
            )
        return self

    @model_validator(mode="after")
    def _draft_needs_a_model(self) -> EngineConfig:
        if self.speculation == "draft" and not self.draft_model:
            raise ValueError("speculation 'draft' needs a draft model (VIREO_DRAFT_MODEL, a registry name)")
        return self

    def resolved(self) -> EngineConfig:
        """This config with `auto` device, dtypes, overlap, own process and step budget made concrete for this machine;
        EngineError if it asks for CUDA where torch sees none."""
        import torch  # here, not at import: the settings module must stay light

        has_cuda = torch.cuda.is_available()
        device = self.device if self.device != "auto" else ("cuda" if has_cuda else "cpu")
        if device == "cuda" and not has_cuda:
            raise EngineError(
                "the engine is set to run on CUDA (VIREO_DEVICE=cuda) but torch sees no CUDA "
                f"device here (torch {torch.__version__}, CUDA build: {torch.version.cuda}); "
                "set VIREO_DEVICE=auto or cpu, or install a CUDA build of torch"
            )
        if device == "cuda" and self.tensor_parallel_size > 1 and self.tensor_parallel_size > torch.cuda.device_count():
            raise EngineError(
                f"tensor_parallel_size {self.tensor_parallel_size} needs as many GPUs; torch sees "
                f"{torch.cuda.device_count()} here (VIREO_TENSOR_PARALLEL_SIZE)"
            )
        dtype = self.dtype if self.dtype != "auto" else ("bfloat16" if device == "cuda" else "float32")
        kv_dtype = self.kv_cache_dtype
        if kv_dtype == "auto":
            kv_dtype = "float16" if device == "cpu" and self.cpu_kernels and dtype == "float32" else dtype
        if device == "cuda" and kv_dtype != dtype:
            raise EngineError(
                f"a {kv_dtype} KV cache is for the CPU; on CUDA the cache holds the model's dtype ({dtype}): "
                "set VIREO_KV_CACHE_DTYPE=auto"
            )
        overlap = self.overlap_decode if self.overlap_decode is not None else device == "cuda"
        own_process = self.own_process if self.own_process is not None else device == "cuda"
        own_process = own_process and self.backend in LOCAL_BACKENDS
        tokens_per_step = self.max_tokens_per_step or (
            CUDA_TOKENS_PER_STEP if device == "cuda" else CPU_TOKENS_PER_STEP
        )
        return self.model_copy(
            update={
                "device": device,
                "dtype": dtype,
                "kv_cache_dtype": kv_dtype,
                "overlap_decode": overlap,
                "own_process": own_process,
                "max_tokens_per_step": tokens_per_step,
            }
        )

    def context_length(self, model_max_positions: int | None) -> int:
        """The longest prompt + completion this engine takes: `max_model_len`, never past the model's
        own context (its position tables end there). The submit-time check uses the same number."""
        model_max = model_max_positions or DEFAULT_CONTEXT
        return min(self.max_model_len, model_max) if self.max_model_len else model_max
