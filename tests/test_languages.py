import pytest

from qwen_playground.backends.demo import load_tokenizer
from qwen_playground.core.config import builtin_families
from qwen_playground.languages import detect, get_language, languages, matches, token_costs

FAMILIES = builtin_families()

# A second real sentence per language, unlike the shipped samples.
SENTENCES = {
    "English": "Could you tell me where the nearest train station is?",
    "Chinese": "请问最近的火车站在哪里？我需要买一张去上海的票。",
    "Hindi": "क्या आप मुझे बता सकते हैं कि सबसे नज़दीकी रेलवे स्टेशन कहाँ है?",
    "Arabic": "هل يمكنك أن تخبرني أين تقع أقرب محطة قطار؟",
    "Spanish": "¿Podría decirme dónde está la estación de tren más cercana?",
    "French": "Pourriez-vous me dire où se trouve la gare la plus proche ?",
    "German": "Könnten Sie mir bitte sagen, wo der nächste Bahnhof ist?",
    "Portuguese": "Você poderia me dizer onde fica a estação de trem mais próxima?",
    "Russian": "Не могли бы вы сказать мне, где находится ближайший вокзал?",
    "Japanese": "一番近い駅はどこにあるか教えていただけますか？",
    "Korean": "가장 가까운 기차역이 어디에 있는지 알려 주시겠어요?",
    "Indonesian": "Bisakah Anda memberi tahu saya di mana stasiun kereta terdekat?",
}


def test_at_least_the_twelve_languages_are_offered():
    assert set(SENTENCES) <= set(languages())


@pytest.mark.parametrize("name", list(SENTENCES))
def test_detection_on_real_sentences(name):
    wanted = get_language(name)
    for text in (SENTENCES[name], wanted.sample):
        assert matches(detect(text), wanted), (name, text, detect(text))


def test_wrong_language_is_flagged():
    assert not matches(detect("This answer is in English, not Spanish."), get_language("Spanish"))
    assert detect("").language is None


def test_unknown_language_suggests():
    with pytest.raises(ValueError, match="Unknown language 'Spansh'.*Did you mean 'Spanish'"):
        get_language("Spansh")


def test_token_cost_table_with_the_real_qwen_tokenizer():
    rows = {r["language"]: r for r in token_costs(load_tokenizer(FAMILIES["qwen3"]), ["English", "Hindi", "Chinese"])}
    assert rows["English"]["vs English"] == 1.0
    assert rows["Hindi (हिन्दी)"]["tokens"] > rows["English"]["tokens"]  # Devanagari costs more tokens
    assert all(r["tokens"] > 0 for r in rows.values())


def test_the_language_limit_keeps_earlier_choices_and_refuses_the_newest():
    from qwen_playground.tasks.multilingual import MAX_CHOSEN, within_limit

    before = ["English", "Chinese", "Spanish", "Hindi", "Arabic", "French"]
    assert len(before) == MAX_CHOSEN
    picked = ["English", "Chinese", "German", "Spanish", "Hindi", "Arabic", "French"]  # German ticked: the control's order
    assert within_limit(picked, before) == (before, ["German"])
    assert within_limit(["English", "German"], ["English"]) == (["English", "German"], [])
