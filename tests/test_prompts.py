import pytest

from qwen_playground.core.prompts import PROMPTS_DIR, TemplateError, load_template, parse_template


def test_every_shipped_template_parses():
    names = [p.stem for p in PROMPTS_DIR.glob("*.yaml")]
    assert "chat" in names
    for name in names:
        load_template(name)


def test_user_text_is_data_not_template():
    chat = load_template("chat")
    for text in ["{{ 7*7 }}", "{% for x in range(3) %}{{x}}{% endfor %}", "{{ ''.__class__.__mro__ }}", "{# c #} }} {{"]:
        assert chat.render_user(message=text) == text


def test_missing_and_unknown_variables_are_clear_errors():
    t = parse_template("t", {"system": "You teach {{ subject }}.", "user": "{{ question }}", "variables": {"subject": "math", "question": None}})
    assert t.render_system() == "You teach math."
    assert t.render_system(subject="art") == "You teach art."
    with pytest.raises(TemplateError, match="needs a value: 'question' is undefined"):
        t.render_user()
    with pytest.raises(TemplateError, match="no variable.*topic"):
        t.render_user(question="q", topic="x")


def test_sandbox_blocks_unsafe_template_code():
    t = parse_template("evil", {"user": "{{ ''.__class__.__mro__[1].__subclasses__() }}"})
    with pytest.raises(TemplateError):
        t.render_user()


def test_malformed_template_files_are_refused():
    with pytest.raises(TemplateError, match="missing 'user'"):
        parse_template("x", {"system": "hi"})
    with pytest.raises(TemplateError, match="syntax error"):
        parse_template("x", {"user": "{% for %}"})
    with pytest.raises(TemplateError, match="unknown key"):
        parse_template("x", {"user": "{{ a }}", "sytem": "typo"})
    with pytest.raises(TemplateError, match="No prompt template 'nope'"):
        load_template("nope")
