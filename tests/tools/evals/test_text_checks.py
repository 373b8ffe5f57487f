"""The checkable properties of open-ended text, on hand-made replies."""

from vireo.tools.evals.text_checks import (
    json_keys,
    list_items,
    max_words,
    mentions,
    pass_rates,
    run_checks,
    starts_with_any,
    word_band,
)


def test_mentions_needs_every_term_as_whole_words_in_any_case():
    assert mentions("The capital is PARIS.", ["Paris"])
    assert not mentions("A Parisian cafe.", ["Paris"])
    assert not mentions("Ana is here.", ["Ana", "30"])
    assert mentions("Opening on Harbour Street soon", ["harbour street"])


def test_word_limits_count_words_and_refuse_an_empty_reply():
    assert max_words("Fifty six", 5) and not max_words("one two three four five six", 5)
    assert not max_words("   ", 5)
    assert word_band("a " * 30, [30, 90]) and not word_band("a " * 29, [30, 90])


def test_list_items_counts_bulleted_and_numbered_lines_exactly():
    assert list_items("Fruits:\n- Apple\n* Banana\n• Pear", 3)
    assert list_items("1. Red\n2) Blue", 2)
    assert not list_items("- Apple\n- Banana", 3)
    assert not list_items("-Apple\n2.Blue", 2)  # a marker needs a space after it


def test_starts_with_any_reads_the_first_word_only():
    assert starts_with_any("Yes, it does.", ["yes", "no"])
    assert not starts_with_any("Well, yes.", ["yes", "no"])


def test_json_keys_finds_the_object_inside_a_code_fence():
    assert json_keys('```json\n{"name": "Ana", "age": 30}\n```', ["name", "age"])
    assert not json_keys('{"name": "Ana"}', ["name", "age"])
    assert not json_keys("name: Ana, age: 30", ["name"])
    assert not json_keys('{"name": "Ana",', ["name"])


def test_pass_rates_are_per_check_over_the_items_that_have_it_and_all_for_whole_items():
    results = [run_checks("Paris", {"mentions": ["Paris"], "max_words": 3}), {"mentions": False}]
    assert pass_rates(results) == {"mentions": 0.5, "max_words": 1.0, "all": 0.5}
