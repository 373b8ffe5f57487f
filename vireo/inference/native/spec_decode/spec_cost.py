"""When speculation pays: a step-time model learned from the engine's own steps.

Verifying k guesses per sequence adds k rows to the step. Whether that pays depends on the machine:
on a GPU a decode step costs about the same for 1 or 8 rows (weights are read once), on a 2-core
CPU every row costs a few percent of the step. So the engine times its decode steps, fits
`seconds = fixed + per_row * rows` by least squares over the recent ones, and picks the depth that
maximises expected tokens per second for the batch, using each sequence's acceptance rate. Depth 0
(no speculation) wins whenever guesses would cost more than they save, so speculation is never
planned to be slower than plain decoding.

The fit is a model and can be wrong (a verify step also pays for padded attention and per-sequence
acceptance work, which rows alone do not capture), so `RealizedRates` checks the outcome: per batch
size it keeps the tokens per second that plain and speculative decode steps really delivered, and
vetoes speculation where it delivered less, re-trying either side now and then to stay current.
"""

from __future__ import annotations

from collections import defaultdict, deque

WINDOW = 256  # recent decode steps in the fit
MIN_SAMPLES = 8
PRIOR_ROW_SHARE = 0.15  # before the fit: one row costs 15 % of a one-row step (as on a 2-core CPU)


def expected_tokens(acceptance: float, depth: int) -> float:
    """Tokens a sequence emits per verify step: the accepted run of guesses plus the target's token.

    Each guess holds with probability `acceptance` given the previous ones held (a geometric run).
    """
    a = min(max(acceptance, 0.0), 0.999)
    return sum(a**i for i in range(depth + 1))


class StepCost:
    """Online linear model of a decode step's duration in rows."""

    def __init__(self, window: int = WINDOW):
        self.samples: deque[tuple[int, float]] = deque(maxlen=window)

    def observe(self, rows: int, seconds: float) -> None:
        if rows > 0 and seconds > 0:
            self.samples.append((rows, seconds))

    def fit(self, around: int | None = None) -> tuple[float, float]:
        """(fixed, per_row) seconds, fitted to the steps whose row count is near `around`.

        A step's cost is not one straight line from 1 to 100 rows (few rows are memory-bound and
        nearly free, many rows compute-bound), so only steps from around/2 to 3 x around count. Until
        those vary enough, a prior shape (a row costs PRIOR_ROW_SHARE of a one-row step) is scaled to
        the observed times.
        """
        samples = [(r, t) for r, t in self.samples if around is None or around / 2 <= r <= 3 * around] or list(
            self.samples
        )
        n = len(samples)
        mean_rows = sum(r for r, _ in samples) / n if n else 1.0
        mean_time = sum(t for _, t in samples) / n if n else 1.0
        var = sum((r - mean_rows) ** 2 for r, _ in samples) / n if n else 0.0
        if n >= MIN_SAMPLES and var >= 0.25:
            cov = sum((r - mean_rows) * (t - mean_time) for r, t in samples) / n
            per_row = max(cov / var, 0.0)
            fixed = max(mean_time - per_row * mean_rows, 1e-6)
            return fixed, per_row
        fixed = mean_time / (1 + PRIOR_ROW_SHARE * (mean_rows - 1))
        return fixed, fixed * PRIOR_ROW_SHARE


def best_depth(cost: StepCost, acceptances: list[float], other_rows: int, other_tokens: int, max_depth: int) -> int:
    """The depth (0..max_depth) for the speculating sequences that maximises tokens per second.

    `acceptances`: one per speculating sequence; `other_rows` / `other_tokens`: the rows and the
    tokens emitted by everything else in the step (the same at every depth).
    """
    if not acceptances:
        return 0
    fixed, per_row = cost.fit(around=other_rows + len(acceptances))

    def rate(depth: int) -> float:
        tokens = other_tokens + sum(expected_tokens(a, depth) for a in acceptances)
        rows = other_rows + len(acceptances) * (1 + depth)
        return tokens / (fixed + per_row * rows)

    return max(range(max_depth + 1), key=lambda d: (rate(d), -d))


class RealizedRates:
    """Tokens per second delivered by plain vs speculative decode steps, per batch-size bucket."""

    def __init__(self, window: int = 48, min_steps: int = 6, explore_every: int = 8):
        self.window, self.min_steps, self.explore_every = window, min_steps, explore_every
        self.steps: dict[tuple[int, bool], deque[tuple[int, float]]] = {}
        self.decisions: defaultdict[int, int] = defaultdict(int)

    @staticmethod
    def bucket(seqs: int) -> int:
        """1, 2-3, 4-7, 8-15, ...: batches of about the same size share their statistics."""
        return max(1, seqs).bit_length()

    def record(self, seqs: int, speculated: bool, tokens: int, seconds: float) -> None:
        key = (self.bucket(seqs), speculated)
        if key not in self.steps:
            self.steps[key] = deque(maxlen=self.window)
        self.steps[key].append((tokens, seconds))

    def rate(self, seqs: int, speculated: bool) -> float | None:
        """Tokens per second over the bucket's recent steps; None until there are enough."""
        steps = self.steps.get((self.bucket(seqs), speculated), ())
        if len(steps) < self.min_steps:
            return None
        return sum(t for t, _ in steps) / max(sum(s for _, s in steps), 1e-9)

    def allow(self, seqs: int, depth: int) -> int:
        """`depth`, or 0 where speculative steps of this batch size delivered fewer tokens/s.

        Every `explore_every`-th decision of a bucket takes the other side when that side's record
        is missing or vetoed, so a verdict follows changes in load and acceptance.
        """
        if depth == 0:
            return 0
        bucket = self.bucket(seqs)
        self.decisions[bucket] += 1
        explore = self.decisions[bucket] % self.explore_every == 0
        plain, spec = self.rate(seqs, False), self.rate(seqs, True)
        if plain is None:  # never compared yet: try plain steps now and then to learn their rate
            return 0 if explore else depth
        if spec is not None and spec < plain and not explore:
            return 0
        return depth
