"""Reliability and security drills (`make drills`): each module attacks or breaks one thing.

Every drill module defines `run(short: bool) -> DrillResult`; `python -m vireo.tools.drills` runs
them all and writes `benchmarks/results/reliability.json` (tried / held / failed per drill).
`short=True` is the version the test suite runs in CI.
"""
