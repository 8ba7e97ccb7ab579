import unicodedata

import pytest

from asr.data.text import BLANK, CHARACTERS, CharTokenizer, normalize_text


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("Hello, World!", "hello world"),
        ("It's 42 degrees.", "it's forty two degrees"),
        ("the 1st of May", "the first of may"),
        ("3.5% of 1,000", "three point five percent of one thousand"),
        ("Rock & roll -- well-known", "rock and roll well known"),
        ("Café naïve", "cafe naive"),
        ("\u2018quoted\u2019 don\u2019t", "quoted don't"),
        ("P I T T S B U R G H", "p i t t s b u r g h"),
        ("  many   spaces\n", "many spaces"),
        ("?!", ""),
        ("Straße", "strasse"),
        ("København", "kobenhavn"),
        ("Æsop", "aesop"),
        ("œuvre", "oeuvre"),
        ("Łódź", "lodz"),
        ("ÞÓRR Ðorđe Ħal ŊAI", "thorr dorde hal ngai"),
    ],
)
def test_normalize_text(raw, expected):
    assert normalize_text(raw) == expected


def test_normalised_text_fits_the_tokenizer():
    text = normalize_text("Mr. O'Brien paid $5 for 2 apples; 10% off!")
    assert set(text) <= set(CHARACTERS)


def test_tokenizer_round_trip():
    tokenizer = CharTokenizer()
    text = "the quick brown fox doesn't jump"
    ids = tokenizer.encode(text)
    assert ids.dtype.is_floating_point is False
    assert (ids > 0).all()  # no blank in encoded text
    assert tokenizer.decode(ids) == text
    assert tokenizer.vocabulary[0] == BLANK and len(tokenizer) == 1 + len(CHARACTERS)


def test_tokenizer_rejects_unknown_character():
    with pytest.raises(ValueError, match="'7'"):
        CharTokenizer().encode("route 7")


def test_every_latin_letter_keeps_a_letter():
    # Latin-1 Supplement and Latin Extended-A: no letter may vanish (and split its word)
    letters = [chr(cp) for cp in range(0xC0, 0x180) if unicodedata.category(chr(cp)).startswith("L")]
    assert len(letters) > 180
    for letter in letters:
        out = normalize_text(f"x{letter}x")
        assert " " not in out and any("a" <= ch <= "z" for ch in out[1:-1]), (letter, unicodedata.name(letter), out)
