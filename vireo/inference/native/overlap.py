"""Overlapped decoding: launch the next decode step before this one's tokens reach the host.

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

The run-ahead stops (the step in flight is completed first, then the scheduler runs as usual)
whenever a request waits for admission, a block cannot be had, or a sequence needs the host
between steps: speculation, a grammar, log-probabilities or a seeded sampler.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from vireo.inference.native.sampling.sampler import probabilities
from vireo.inference.native.scheduling.batch import Batch, SampledTokens, ScheduledSeq
from vireo.inference.native.scheduling.block_manager import BlockManager
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
    """A launched decode step: its items and the tokens it is sampling (device, then host)."""

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
    """Queue the forward and the sampling of a decode batch; nothing here waits for the GPU."""
    _, logits = runner.run(items, input_ids)
    assert logits is not None  # every row of a decode batch samples
    tokens = pick_on_device(logits, [item.seq for item in items])
    if tokens.device.type != "cuda":
        return Flight(items, tokens, tokens)
    host = torch.empty(tokens.shape, dtype=tokens.dtype, pin_memory=True)
    host.copy_(tokens, non_blocking=True)
    ready = torch.cuda.Event()
    ready.record()
    return Flight(items, tokens, host, ready)


def pick_on_device(logits: torch.Tensor, seqs: list[Sequence]) -> torch.Tensor:
    """Next token per row [rows] as a device tensor: argmax, or a draw for sampled rows."""
    tokens = logits.argmax(dim=-1)
    for row, seq in enumerate(seqs):
        if not seq.sampling.greedy:
            tokens[row] = torch.multinomial(probabilities(logits[row], seq.sampling), 1)[0]
    return tokens


def ahead_items(flight: Flight, context_length: int) -> list[ScheduledSeq]:
    """The next decode batch (`AheadSeq`s): the flight's sequences that its tokens cannot finish for sure."""
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
    """The step in flight, if any: started from a pure decode batch, kept going while nothing else
    needs the scheduler, landed one step behind (`StepLoop` applies what lands)."""

    def __init__(self, runner: ModelRunner, blocks: BlockManager, enabled: bool, context_length: int):
        self.runner, self.blocks = runner, blocks
        self.enabled, self.context_length = enabled, context_length
        self.flight: Flight | None = None  # a decode step launched, its tokens not yet landed
        self.steps_run_ahead = 0  # decode steps queued before the previous one's tokens landed

    def takes(self, batch: Batch) -> bool:
        """A pure decode batch whose tokens can all be picked on the device."""
        return self.enabled and all(
            item.num_tokens == 1 and item.samples and may_overlap(item.seq) for item in batch.items
        )

    def start(self, items: list[ScheduledSeq]) -> None:
        self.runner.prepare_cache(self.blocks)
        self.flight = launch(self.runner, items)

    def advance(self, admitting: bool) -> tuple[list[ScheduledSeq], dict[ScheduledSeq, SampledTokens]]:
        """Queue the next decode step behind the one in flight (unless a request waits for
        admission), then land the one in flight while the GPU computes: its items and tokens."""
        flight, self.flight = self.flight, None
        assert flight is not None  # called only with a step in flight
        if not admitting:
            items = ahead_items(flight, self.context_length)
            if items and all(self.blocks.allocate(i.seq, len(i.seq) + 1) for i in items):
                self.runner.prepare_cache(self.blocks)
                self.flight = launch(self.runner, items, ahead_input_ids(flight, items))
                self.steps_run_ahead += 1
        tokens = flight.wait()
        return flight.items, {item: SampledTokens([token]) for item, token in zip(flight.items, tokens)}
