"""Kernel choices come from per-device tables of data (`vireo/kernels/configs`)."""

import json

import pytest
import torch

from vireo.kernels.tuning import CONFIGS, DEFAULT_DEVICE, config_file, kernel_table, pick


def test_rules_are_read_top_down_and_the_first_that_holds_wins():
    rules = [{"when": {"k_min": 8192}, "use": "down"}, {"when": {"n_min": 16384}, "use": "wide"}, {"use": "rest"}]
    assert pick(rules, n=4096, k=14336) == "down"
    assert pick(rules, n=28672, k=4096) == "wide"
    assert pick(rules, n=4096, k=4096) == "rest"


def test_upper_bounds_include_their_limit():
    rules = [{"when": {"q_len_max": 16}, "use": 16}, {"use": 128}]
    assert [pick(rules, q_len=n) for n in (16, 17)] == [16, 128]


def test_a_device_without_its_own_table_gets_the_measured_one():
    assert kernel_table(torch.device("cpu")) == json.loads(config_file(DEFAULT_DEVICE).read_text())


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.json")), ids=lambda p: p.name)
def test_every_rule_list_ends_with_a_rule_for_everything_else(path):
    def rule_lists(node):
        if isinstance(node, list) and node and isinstance(node[0], dict) and "use" in node[0]:
            yield node
        elif isinstance(node, dict):
            for value in node.values():
                yield from rule_lists(value)

    lists = list(rule_lists(json.loads(path.read_text())))
    assert lists and all("when" not in rules[-1] for rules in lists)
