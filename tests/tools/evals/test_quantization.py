"""The quantization eval reads HumanEval pass@1 from `vireo eval code` result files instead of running its own."""

import json

import torch

from vireo.tools.evals.quantization import humaneval_pass_at_1, quant_name

MACHINE = {"host": "vm", "cores": 2, "load_average_at_start": [0.5, 0.5, 0.5]}


def _side(model: str, quant: str, passed: int) -> dict:
    return {
        "config": {"model": model, "backend": "native", "quant": quant, "spec": "off"},
        "metrics": {"pass@1": round(passed / 164, 4), "passed": passed, "problems": 164},
        "duration_s": 300.0,
    }


def _write(folder, name: str, result: dict, date: str, subset: str = "full") -> None:
    result = {**result, "dataset": {"subset": subset}, "date": date, "machine": MACHINE}
    (folder / name).write_text(json.dumps(result))


def test_pass_at_1_comes_from_the_variant_side_of_a_comparison(tmp_path):
    _write(
        tmp_path,
        "code-vs.json",
        {"kind": "comparison", "base": _side("m", "none", 80), "variant": _side("m", "int4-rtn-g128", 70)},
        "2026-11-27T05:00:00",
    )
    found = humaneval_pass_at_1("m", "int4-rtn-g128", tmp_path)
    assert (found["passed"], found["file"]) == (70, "code-vs.json")
    assert humaneval_pass_at_1("m", "none", tmp_path)["passed"] == 80


def test_the_newest_full_run_wins_and_subsets_are_ignored(tmp_path):
    _write(tmp_path, "code-old.json", _side("m", "int8-rtn", 60), "2026-11-27T01:00:00")
    _write(tmp_path, "code-new.json", _side("m", "int8-rtn", 61), "2026-11-27T02:00:00")
    _write(tmp_path, "code-ci.json", _side("m", "int8-rtn", 10), "2026-11-27T03:00:00", subset="ci subset")
    assert humaneval_pass_at_1("m", "int8-rtn", tmp_path)["passed"] == 61


def test_no_run_of_those_weights_gives_none(tmp_path):
    _write(tmp_path, "code-a.json", _side("other", "int8-rtn", 60), "2026-11-27T01:00:00")
    assert humaneval_pass_at_1("m", "int8-rtn", tmp_path) is None


def test_variant_names_map_to_the_quant_names_evals_record():
    assert quant_name(None, None, torch.float32) == "none"
    assert quant_name("rtn", 8, 128) == "int8-rtn"
    assert quant_name("gptq", 4, 64) == "int4-gptq-g64"


def test_one_off_experiments_are_not_the_eval(tmp_path):
    _write(
        tmp_path,
        "code-exp.json",
        {**_side("m", "none", 90), "experiment": {"what": "another prompt"}},
        "2026-11-27T05:00:00",
    )
    assert humaneval_pass_at_1("m", "none", tmp_path) is None
