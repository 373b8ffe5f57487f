"""Tooling beside the runtime: benchmarks (`bench/`), quality evals (`evals/`) and reliability drills
(`drills/`). The server never imports this package; `vireo/cli.py` adds its commands to the platform's."""
