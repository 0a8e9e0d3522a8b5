import pytest

from lib.common import ReproError
from lib.config import check_positive, get_preset
from lib.data import Example
from lib.prompts import cot_prompt, is_correct, parse_answer

NUM = Example("1", "gsm8k", "numeric", "q", "1200")
YN = Example("2", "strategyqa", "yesno", "q", "no", ["yes", "no"], 1)
MC = Example("3", "commonsense_qa", "mc", "q", "grocery cart", ["mouth", "grocery cart", "cart"], 1)


@pytest.mark.parametrize(
    "text,ex,want",
    [
        ("He has 3 + 4 = 7. So the answer is 1,200.", NUM, "1200"),
        ("So the answer is $12.50.", NUM, "12.5"),
        ("5 apples then 7", NUM, "7"),
        ("no numbers here", NUM, None),
        ("Pears float. So the answer is no.", YN, "no"),
        ("Yes, because no one knows", YN, "no"),  # no "answer is": the last yes/no counts
        ("So the answer is grocery cart.", MC, "grocery cart"),
        ("So the answer is (b)", MC, "grocery cart"),
        ("So the answer is a shelf.", MC, None),
    ],
)
def test_parse_answer(text, ex, want):
    assert parse_answer(text, ex) == want


def test_unparseable_is_wrong_not_a_crash():
    assert not is_correct(None, NUM)
    assert is_correct("1200", NUM) and is_correct("1200.0", NUM)


def test_cot_prompt_lists_options_for_mc():
    p = cot_prompt(MC)
    assert (
        p.endswith("Question: q Options: mouth, grocery cart, cart\nAnswer:")
        and p.count("So the answer is") == 4
    )


def test_unknown_preset_and_bad_parameters_are_one_line():
    with pytest.raises(ReproError, match="unknown preset 'fast'; valid: offline, offline_full, paper, smoke"):
        get_preset("fast")
    with pytest.raises(ReproError, match="budget must be positive"):
        check_positive(budget=-1)
    e = ReproError("x")
    assert e._render_traceback_() == ["ReproError: x"]
