"""Overlapped decoding: launch the next step before this one's tokens reach the host.

Without it a decode step is strictly serial: the GPU runs the forward, the host waits for the
sampled tokens, then streams them, checks stops and builds the next step's tensors while the GPU
sits idle. At batch 1 on a GPU that idle host time is a large share of each step.

With a pure decode step in flight, the engine builds the next one from what it already knows:
every sequence moves one position on, its input token is the one the step in flight is sampling
(a device tensor, never read by the host), and its KV slot needs at most one new block. That step
is queued behind the one in flight; only then does the host wait for the earlier tokens and do
its bookkeeping, while the GPU computes. A sequence that the earlier tokens finish (EOS, a stop
string, an abort) has computed one token too many: its row is dropped, and the KV slot it wrote
lies past its end, in a block no prefix-cache entry names.

Requests that arrive meanwhile join the run-ahead: where one waits for admission
(`StepLoop.admit_now`), the scheduler admits waiting sequences into the queued step by its usual
rules (`Scheduler.admit_whole`), each with its whole prompt (host-known ids, planned after the
decodes' device ids), so that every row of the step samples and its tokens land one step later like
any decode's; the sequence then decodes ahead from its first token on. Staggered arrivals (one per
step or so, through the platform) would otherwise stop the run-ahead at nearly every step.

The run-ahead stops (the step in flight is completed first, then the scheduler runs as usual)
when a block cannot be had, when a sequence needs the host between steps (speculation, a grammar,
log-probabilities or a seeded sampler), and when the first request to admit is such a sequence or
its prompt does not fit this step's token budget whole (it is then prefilled in chunks).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from vireo.inference.native.sampling.sampler import probabilities
from vireo.inference.native.scheduling.batch import Batch, SampledTokens, ScheduledSeq
from vireo.inference.native.scheduling.scheduler import Scheduler
from vireo.inference.native.scheduling.sequence import Sequence
from vireo.inference.native.worker.model_runner import ModelRunner
from vireo.inference.native.worker.transfer import to_device


class AheadSeq(ScheduledSeq):
    """A decode of the token the step in flight is sampling: position len(seq), unknown here yet."""

    def __post_init__(self) -> None:
        self.start = len(self.seq)

    @property
    def samples(self) -> bool:
        return True


@dataclass
class Flight:
    """A launched step: its items (in its rows' order) and the tokens it is sampling (device, then host)."""

    items: list[ScheduledSeq]
    tokens: torch.Tensor  # [items] on the device
    host: torch.Tensor  # the same tokens, copied (pinned memory on CUDA) when they are ready
    ready: torch.cuda.Event | None = None
    row_of: dict[int, int] = field(default_factory=dict)  # seq_id -> row

    def __post_init__(self) -> None:
        self.row_of = {item.seq.seq_id: row for row, item in enumerate(self.items)}

    def wait(self) -> list[int]:
        """The sampled tokens on the host (blocks until the step has run)."""
        if self.ready is not None:
            self.ready.synchronize()
        return self.host.tolist()


def may_overlap(seq: Sequence) -> bool:
    """Whether `seq`'s next token can be picked on the device, with no host step in between."""
    sampling = seq.sampling
    return seq.speculation == "off" and seq.grammar is None and not sampling.logprobs and seq.generator is None


def launch(runner: ModelRunner, items: list[ScheduledSeq], input_ids: torch.Tensor | None = None) -> Flight:
    """Queue the forward and the sampling of a batch whose every item samples; nothing here waits
    for the GPU. `input_ids`: the device ids of its leading decodes (`ModelRunner.prepare`)."""
    inputs, logits = runner.run(items, input_ids)
    assert logits is not None  # every item samples
    order = inputs.order  # the logits' rows: decodes first, then prompts (`flat_order`)
    tokens = pick_on_device(logits, [item.seq for item in order])
    if tokens.device.type != "cuda":
        return Flight(order, tokens, tokens)
    host = torch.empty(tokens.shape, dtype=tokens.dtype, pin_memory=True)
    host.copy_(tokens, non_blocking=True)
    ready = torch.cuda.Event()
    ready.record()
    return Flight(order, tokens, host, ready)


def pick_on_device(logits: torch.Tensor, seqs: list[Sequence]) -> torch.Tensor:
    """Next token per row [rows] as a device tensor: argmax, or a draw for sampled rows."""
    tokens = logits.argmax(dim=-1)
    for row, seq in enumerate(seqs):
        if not seq.sampling.greedy:
            tokens[row] = torch.multinomial(probabilities(logits[row], seq.sampling), 1)[0]
    return tokens


def ahead_items(flight: Flight, context_length: int) -> list[ScheduledSeq]:
    """The next decode batch (`AheadSeq`s): the flight's sequences that its tokens cannot finish for
    sure (a prompt in the flight included: its first token is the one in flight)."""
    items: list[ScheduledSeq] = []
    for item in flight.items:
        seq = item.seq
        if seq.is_finished:
            continue
        produced = seq.num_completion_tokens + 1  # with the token in flight
        if produced >= seq.sampling.max_tokens or len(seq) + 1 >= context_length:
            continue  # that token is its last: nothing to compute after it
        items.append(AheadSeq(seq, 1))
    return items


def ahead_input_ids(flight: Flight, items: list[ScheduledSeq]) -> torch.Tensor:
    """The flight's device tokens, as the next batch's input ids (items in `items` order)."""
    rows = [flight.row_of[item.seq.seq_id] for item in items]
    if rows == list(range(len(flight.items))):
        return flight.tokens
    return flight.tokens[to_device(rows, torch.long, flight.tokens.device)]


class OverlappedDecoding:
    """The step in flight, if any: started from a pure decode batch, kept going (admitting what
    may join it) while nothing needs the host, landed one step behind (`StepLoop` applies what lands)."""

    def __init__(self, runner: ModelRunner, scheduler: Scheduler, enabled: bool, context_length: int):
        self.runner, self.scheduler, self.blocks = runner, scheduler, scheduler.blocks
        self.enabled, self.context_length = enabled, context_length
        self.flight: Flight | None = None  # a step launched, its tokens not yet landed
        self.steps_run_ahead = 0  # steps queued before the previous one's tokens landed
        self.steps_admitted_ahead = 0  # of those, steps that admitted waiting requests
        # True: arrivals join the step queued ahead. Off: an arrival drains the run-ahead and the usual step
        # admits it. Measured on an H100 (random Llama-8B, 64 closed-loop clients, arrivals staggered by
        # 40-160 ms, seven alternating pairs; benchmarks/results/gpu/staggered-arrivals-h100-2026-12-06.json):
        # the same tok/s within 0.5 %, TTFT p50 6-15 ms worse admitted ahead (its first token lands a step
        # later); through the platform too, no gain (platform-admission-ab-h100-2026-12-06.json). Kept, tested,
        # as a switch for benchmarks.
        self.admit_ahead = False

    def takes(self, batch: Batch) -> bool:
        """A pure decode batch whose tokens can all be picked on the device."""
        return self.enabled and all(
            item.num_tokens == 1 and item.samples and may_overlap(item.seq) for item in batch.items
        )

    def start(self, items: list[ScheduledSeq]) -> None:
        self.runner.prepare_cache(self.blocks)
        self.flight = launch(self.runner, items)

    def advance(self, admitting: bool) -> tuple[list[ScheduledSeq], dict[ScheduledSeq, SampledTokens]]:
        """Queue the next step behind the one in flight (its decodes, plus, where `admitting`, the
        waiting requests that may join it; nothing if none may), then land the one in flight while
        the GPU computes: its items and tokens."""
        flight, self.flight = self.flight, None
        assert flight is not None  # called only with a step in flight
        decodes = ahead_items(flight, self.context_length)
        if decodes and all(self.blocks.allocate(i.seq, len(i.seq) + 1) for i in decodes):
            admitted = self._admit(len(decodes)) if admitting and self.admit_ahead else []
            if admitted or not admitting:  # else the waiting request needs the usual step: drain
                self.runner.prepare_cache(self.blocks)
                self.flight = launch(self.runner, decodes + admitted, ahead_input_ids(flight, decodes))
                self.steps_run_ahead += 1
                self.steps_admitted_ahead += bool(admitted)
        tokens = flight.wait()
        return flight.items, {item: SampledTokens([token]) for item, token in zip(flight.items, tokens)}

    def _admit(self, decode_rows: int) -> list[ScheduledSeq]:
        """Waiting sequences admitted whole into the step queued behind `decode_rows` decodes."""
        batch = Batch([])
        self.scheduler.admit_whole(batch, self.scheduler.max_tokens_per_step - decode_rows, may_overlap)
        return batch.items
