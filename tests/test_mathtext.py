import pytest

from qwen_playground.mathtext import check_answer, extract_boxed, protect_math


@pytest.mark.parametrize("text, expected", [
    ("it costs $5 and $10", r"it costs \$5 and \$10"),
    ("it costs $5 and $10; what is $x$?", r"it costs \$5 and \$10; what is \(x\)?"),
    ("The price went from $5 to $10.50 today", r"The price went from \$5 to \$10.50 today"),
    ("$x^2$ is inline", r"\(x^2\) is inline"),
    ("$$\\int_0^1 x\\,dx$$", "$$\\int_0^1 x\\,dx$$"),
    ("\\(a\\) and \\[b\\]", "\\(a\\) and \\[b\\]"),
    ("Area $\\pi r^2$ for $3", r"Area \(\pi r^2\) for \$3"),
    ("pay $ 5 $ now", r"pay \$ 5 \$ now"),
    ("already \\$5", "already \\$5"),
    ("`$HOME` and ```\n$x$\n```", "`$HOME` and ```\n$x$\n```"),
    ("$a\n\nb$", r"\$a" + "\n\n" + r"b\$"),
])
def test_latex_delimiters_and_the_currency_case(text, expected):
    assert protect_math(text) == expected


def test_boxed_answer_extraction():
    assert extract_boxed(r"First \boxed{1}, finally \boxed{\frac{a}{b^{2}}}.") == r"\frac{a}{b^{2}}"
    assert extract_boxed("no box") is None
    assert extract_boxed(r"streaming \boxed{\frac{1}{") is None


@pytest.mark.parametrize("expected, answer", [
    ("1/2", "0.5"), ("0.5", r"\frac{1}{2}"), (r"\frac{1}{2}", "1/2"), ("x^2+1", "1+x^2"),
    (r"\{1, 2\}", r"\{2, 1\}"), ("3", "3.0"), (r"\sqrt{4}", "2"),
])
def test_equivalent_answers_agree(expected, answer):
    assert check_answer(expected, answer).equal is True


@pytest.mark.parametrize("expected, answer", [("1/3", "0.5"), ("2", "3"), ("x^2", "2x"), (r"\{1, 2\}", r"\{1, 3\}")])
def test_different_answers_do_not(expected, answer):
    verdict = check_answer(expected, answer)
    assert verdict.equal is False and "Different" in verdict.message


def test_missing_or_malformed_answers():
    assert check_answer("1/2", None).equal is None
    with pytest.raises(ValueError, match="Could not read the expected answer 'abc\\(\\(' as math"):
        check_answer("abc((", "1")
    with pytest.raises(ValueError):
        check_answer("   ", "1")


def test_a_check_that_outlives_its_deadline_gives_up_and_the_checker_recovers():
    import time

    from qwen_playground import mathtext

    check_answer("1", "1")  # the helper is up
    mathtext._pool.apply_async(time.sleep, (3,))  # and busy for longer than the deadline, whatever the machine's load
    verdict = check_answer("1/2", "0.5", timeout_s=0.5)
    assert verdict.equal is None and "Could not check the answer within" in verdict.message
    assert check_answer("1/2", "0.5").equal is True  # a fresh helper process took over
