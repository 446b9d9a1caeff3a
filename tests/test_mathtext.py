import pytest

from qwen_playground.mathtext import extract_boxed, protect_math


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
