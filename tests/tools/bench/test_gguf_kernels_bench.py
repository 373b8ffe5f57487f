"""`python -m vireo.tools.bench.gguf_kernels --whole-model` on the packaged SmolLM2's GGUF file: every Q4_1 matrix
of its layers timed in both forms a CPU may serve it in, and the JSON says what was timed (no figure is checked:
timings are the benchmark's, not the test's)."""

from __future__ import annotations

import json

import pytest

from vireo.kernels import cpu_gguf_dot
from vireo.tools.bench import gguf_kernels

pytestmark = pytest.mark.skipif(cpu_gguf_dot.load_kernel() is None, reason="our GGUF kernel is not built here")


def test_whole_model_times_every_q4_1_matrix_in_both_forms(tmp_path):
    out = tmp_path / "whole.json"
    args = ["--whole-model", "--models", "smollm2-135m", "--rounds", "1", "--min-s", "0", "--json", str(out)]
    gguf_kernels.main(args)
    result = json.loads(out.read_text())
    assert result["benchmark"] == "gguf_kernels_whole_model"
    rows = result["rows"]
    assert [row["m"] for row in rows] == [1, 4, 8]
    for row in rows:
        assert row["block_type"] == "Q4_1" and row["matrices"] == 30 * 7  # q, k, v, o, gate, up, down per layer
        assert set(row["median_ms"]) == {"gguf_blocks", "int4"} and all(ms > 0 for ms in row["median_ms"].values())
        # the file's blocks (20 bytes per 32 values) are smaller than the int4 form's (float32 scales and offsets)
        assert row["bytes"]["gguf_blocks"] < row["bytes"]["int4"]
