"""What a drill reports: how many attempts it made, how many the platform withstood."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field


@dataclass
class DrillResult:
    name: str
    tried: int = 0
    held: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)  # one line per attempt that did not hold
    facts: dict = field(default_factory=dict)  # measured numbers worth keeping (latencies, counts)
    seconds: float = 0.0
    _started: float = field(default_factory=time.monotonic, repr=False)

    def check(self, held: bool, what: str) -> bool:
        """Record one attempt: `held` True when the platform withstood it; `what` names the attempt."""
        self.tried += 1
        if held:
            self.held += 1
        else:
            self.failed += 1
            self.failures.append(what)
        return held

    def done(self) -> "DrillResult":
        self.seconds = round(time.monotonic() - self._started, 1)
        return self

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("_started")
        return data
