"""The llama.cpp peer of `vireo bench engines`: the same GGUF file, prompts and thread count through
llama.cpp (llama-cpp-python's low-level API, the `llamacpp` extra), so our native engine is measured
beside it in one run.

It runs parallel sequences the way llama.cpp's own server runs parallel slots: one context with
`n_seq_max` sequences, each with a KV stream of its own (`kv_unified` off), and every `llama_decode`
call carries one token of each generating sequence followed by the prompt tokens of newly admitted
ones (as many as `n_batch` allows; a longer prompt continues in the next call). A level runs its
requests with at most `concurrency` in flight, a finished request's sequence cleared and handed to
the next. Greedy (llama.cpp's greedy sampler) and exactly `new_tokens` tokens per request: the loop
picks every next token itself and never stops at an end-of-generation token.

Prompts go in as the token ids our tokenizer makes of them (the workload is token for token the one
the other backends get); llama.cpp's own tokenization of the same text is compared and reported.

`vireo bench engines` runs it in a process of its own (`python -m vireo.tools.bench.llamacpp_peer
JOB OUT`); this module imports no torch, so that process's peak RSS is llama.cpp's memory and the
interpreter's.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vireo.tools.bench.engine_measures import PeakMemory, RequestTiming, backend_result, level_summary

BACKEND = "llamacpp"
CONTEXT_ALIGNMENT = 256  # llama.cpp pads a context to a multiple of this many cells


def llamacpp_available() -> bool:
    """Whether llama-cpp-python is installed and its library loads."""
    try:
        import llama_cpp  # noqa: F401
    except Exception:  # not installed, or a build whose shared library does not load
        return False
    return True


@dataclass
class _Sequence:
    """One request on one of the context's sequences."""

    seq_id: int
    request: int
    prompt: list[int]
    timing: RequestTiming
    prefilled: int = 0  # prompt tokens already in the KV cache
    tokens: list[int] = field(default_factory=list)  # made so far; all but the last are in the KV cache
    last_delivery: float = 0.0

    @property
    def generating(self) -> bool:
        return self.prefilled == len(self.prompt)


class LlamaCppPeer:
    """A GGUF model in one llama.cpp context of `n_seq_max` parallel sequences."""

    def __init__(
        self,
        gguf: Path,
        threads: int,
        n_seq_max: int,
        context_per_sequence: int,
        n_batch: int = 2048,
        extra_bufts: bool = True,
    ):
        import llama_cpp

        logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # its loader's chatter off
        self._lib: Any = llama_cpp
        lib = self._lib
        lib.llama_backend_init()
        model_params = lib.llama_model_default_params()
        # False: no extra weight buffer types (AMX, repacked layouts), as llama.cpp's --no-repack; its AMX
        # path faults on some VMs (a general protection fault in libggml-cpu on the 2026-12-05 Xeon VM)
        model_params.use_extra_bufts = extra_bufts
        self.model = lib.llama_model_load_from_file(str(gguf).encode(), model_params)
        if not self.model:
            raise RuntimeError(f"llama.cpp could not load {gguf}")
        params = lib.llama_context_default_params()
        per_sequence = -(-context_per_sequence // CONTEXT_ALIGNMENT) * CONTEXT_ALIGNMENT
        params.n_ctx = per_sequence * n_seq_max
        params.n_batch = n_batch
        params.n_seq_max = n_seq_max
        params.n_threads = params.n_threads_batch = threads
        params.kv_unified = False  # a KV stream per sequence, as the server's --parallel slots
        self.ctx = lib.llama_init_from_model(self.model, params)
        if not self.ctx:
            lib.llama_model_free(self.model)
            raise RuntimeError(f"llama.cpp could not make a context of {params.n_ctx} tokens for {gguf}")
        self.vocab = lib.llama_model_get_vocab(self.model)
        self.memory = lib.llama_get_memory(self.ctx)
        self.sampler = lib.llama_sampler_init_greedy()
        self.batch = lib.llama_batch_init(n_batch, 0, 1)
        self.n_batch = n_batch
        self.n_seq_max = n_seq_max
        self.settings = {
            "gguf": gguf.name,
            "threads": threads,
            "n_seq_max": n_seq_max,
            "n_ctx": lib.llama_n_ctx(self.ctx),
            "n_ctx_per_sequence": lib.llama_n_ctx_seq(self.ctx),
            "n_batch": n_batch,
            "n_ubatch": lib.llama_n_ubatch(self.ctx),
            "kv_unified": False,
            "extra_buffer_types": extra_bufts,
            "flash_attention": "llama.cpp's default (auto)",
            "llama_cpp_python": llama_cpp.__version__,
            "system_info": lib.llama_print_system_info().decode(errors="replace").strip(),
        }

    def close(self) -> None:
        lib = self._lib
        lib.llama_batch_free(self.batch)
        lib.llama_sampler_free(self.sampler)
        lib.llama_free(self.ctx)
        lib.llama_model_free(self.model)

    def tokenize(self, text: str) -> list[int]:
        """llama.cpp's own tokens for `text` (no BOS added; special tokens parsed, as our tokenizer does)."""
        data = text.encode()
        room = len(data) + 8
        for _ in range(2):
            buffer = (self._lib.llama_token * room)()
            count = self._lib.llama_tokenize(self.vocab, data, len(data), buffer, room, False, True)
            if count >= 0:
                return list(buffer[:count])
            room = -count
        raise RuntimeError("llama_tokenize did not fit its own count")

    def detokenize(self, tokens: list[int]) -> str:
        ids = (self._lib.llama_token * len(tokens))(*tokens)
        room = 16 * len(tokens) + 64
        for _ in range(2):
            buffer = ctypes.create_string_buffer(room)
            count = self._lib.llama_detokenize(self.vocab, ids, len(tokens), buffer, room, False, False)
            if count >= 0:
                return buffer.raw[:count].decode(errors="replace")
            room = -count
        raise RuntimeError("llama_detokenize did not fit its own count")

    def run_level(
        self, prompts: list[list[int]], new_tokens: int, concurrency: int
    ) -> tuple[list[RequestTiming], float, list[list[int]]]:
        """Every prompt with at most `concurrency` in flight: timings, the level's wall time, tokens."""
        if not 1 <= concurrency <= self.n_seq_max:
            raise ValueError(f"concurrency {concurrency} outside 1..{self.n_seq_max} (the context's sequences)")
        waiting = deque(enumerate(prompts))
        free_sequences = list(range(concurrency - 1, -1, -1))
        running: list[_Sequence] = []
        timings: list[RequestTiming] = [RequestTiming(submitted=0.0) for _ in prompts]
        outputs: list[list[int]] = [[] for _ in prompts]
        began = time.perf_counter()
        while waiting or running:
            while waiting and free_sequences:
                request, prompt = waiting.popleft()
                if not prompt:
                    raise ValueError(f"prompt {request} has no tokens")
                timings[request] = RequestTiming(submitted=time.perf_counter())
                running.append(_Sequence(free_sequences.pop(), request, prompt, timings[request]))
            with_output = self._fill_batch(running)
            status = self._lib.llama_decode(self.ctx, self.batch)
            if status != 0:
                raise RuntimeError(f"llama_decode returned {status}")
            for sequence, index in with_output:
                token = self._lib.llama_sampler_sample(self.sampler, self.ctx, index)
                now = time.perf_counter()
                self._deliver(sequence, token, now)
                if len(sequence.tokens) == new_tokens:
                    self._lib.llama_memory_seq_rm(self.memory, sequence.seq_id, -1, -1)
                    free_sequences.append(sequence.seq_id)
                    running.remove(sequence)
                    outputs[sequence.request] = sequence.tokens
        return timings, time.perf_counter() - began, outputs

    @staticmethod
    def _deliver(sequence: _Sequence, token: int, now: float) -> None:
        timing = sequence.timing
        if timing.first is None:
            timing.first = now
        else:
            timing.gaps.append(now - sequence.last_delivery)
        sequence.last_delivery = now
        sequence.tokens.append(token)
        timing.tokens = len(sequence.tokens)

    def _fill_batch(self, running: list[_Sequence]) -> list[tuple[_Sequence, int]]:
        """The next `llama_decode`'s tokens; the sequences with an output, at their batch index."""
        with_output: list[tuple[_Sequence, int]] = []
        count = 0
        for sequence in running:  # one token of every generating sequence first, as the server does
            if sequence.generating:
                position = len(sequence.prompt) + len(sequence.tokens) - 1
                self._put(count, sequence.tokens[-1], position, sequence.seq_id, True)
                with_output.append((sequence, count))
                count += 1
        for sequence in running:  # then prompt tokens, while the batch has room
            if sequence.generating or count == self.n_batch:
                continue
            end = min(len(sequence.prompt), sequence.prefilled + self.n_batch - count)
            for position in range(sequence.prefilled, end):
                last = position == len(sequence.prompt) - 1
                self._put(count, sequence.prompt[position], position, sequence.seq_id, last)
                if last:
                    with_output.append((sequence, count))
                count += 1
            sequence.prefilled = end
        self.batch.n_tokens = count
        return with_output

    def _put(self, index: int, token: int, position: int, seq_id: int, output: bool) -> None:
        batch = self.batch
        batch.token[index] = token
        batch.pos[index] = position
        batch.n_seq_id[index] = 1
        batch.seq_id[index][0] = seq_id
        batch.logits[index] = output


def run_peer(job: dict) -> dict:
    """The llama.cpp row of the engine benchmark for `job` (what `engines.py` hands a backend's
    process: `gguf`, `threads`, `context_per_sequence`, `new_tokens`, `prompt_ids` and `prompts`
    per concurrency level); its result in the other backends' fields, and its greedy texts."""
    levels_ids = {int(c): ids for c, ids in job["prompt_ids"].items()}
    monitor = PeakMemory()
    baseline = monitor.current_mb()
    load_before = [round(x, 2) for x in os.getloadavg()]
    with monitor:
        began = time.perf_counter()
        peer = LlamaCppPeer(
            Path(job["gguf"]),
            job["threads"],
            max(levels_ids),
            job["context_per_sequence"],
            extra_bufts=job.get("extra_bufts", True),
        )
        startup = time.perf_counter() - began
        try:
            peer.run_level([peer.tokenize("Warm up.")], 4, 1)  # as the other backends' warm-up request
            levels, texts = [], {}
            for concurrency, prompt_ids in levels_ids.items():
                timings, wall, outputs = peer.run_level(prompt_ids, job["new_tokens"], concurrency)
                levels.append(level_summary(timings, wall, concurrency, job["new_tokens"]))
                texts[concurrency] = [peer.detokenize(tokens) for tokens in outputs]
            tokenization = compare_tokenization(peer, job["prompts"], job["prompt_ids"])
        finally:
            peer.close()
    result = backend_result(BACKEND, load_before, startup, baseline, monitor.peak_mb, levels)
    result["llamacpp"] = {**peer.settings, "prompt_tokenization": tokenization}
    return {"result": result, "texts": texts}


def compare_tokenization(peer: LlamaCppPeer, prompts: dict, prompt_ids: dict) -> dict:
    """How llama.cpp's tokens for the prompts' text compare with the ids it was given (ours)."""
    pairs = [(peer.tokenize(text), ids) for c in prompts for text, ids in zip(prompts[c], prompt_ids[c])]
    differences = [len(theirs) - len(ours) for theirs, ours in pairs]
    return {
        "prompts": len(pairs),
        "same_ids": sum(theirs == ours for theirs, ours in pairs),
        "length_differs": sum(d != 0 for d in differences),
        "largest_length_difference": max(differences, key=abs, default=0),
    }


def main(argv: list[str] | None = None) -> None:
    job_path, out_path = argv or sys.argv[1:]
    report = run_peer(json.loads(Path(job_path).read_text()))
    Path(out_path).write_text(json.dumps(report))


if __name__ == "__main__":
    main()
