"""Secret masking and terminal safety of agent-supplied text."""

from __future__ import annotations

from sentinel.redact import MASK, Redactor, redact, safe_text


def test_secret_keys_are_masked_recursively() -> None:
    out = redact(
        {"password": "hunter2", "nested": {"API_KEY": "abc", "ok": 1}, "list": [{"token": "t"}]}
    )
    assert out == {
        "password": MASK,
        "nested": {"API_KEY": MASK, "ok": 1},
        "list": [{"token": MASK}],
    }


def test_secret_values_are_masked_by_pattern() -> None:
    text = "use sk-proj-abcdefghijklmnopqrstuvwx and Bearer abc.def.ghijkl and AKIAABCDEFGHIJKLMNOP"
    out = redact({"note": text})["note"]
    assert "sk-proj" not in out and "abc.def" not in out and "AKIA" not in out
    assert out.count(MASK) == 3


def test_card_numbers_masked_only_when_luhn_valid() -> None:
    out = redact({"memo": "card 4111 1111 1111 1111, order 1234567890123"})["memo"]
    assert "4111 1111 1111 1111" not in out
    assert "…1111" in out
    assert "1234567890123" in out  # fails Luhn: an order number, not a card


def test_extra_keys_and_input_not_mutated() -> None:
    data = {"pin_code": "1234", "x": 1}
    assert Redactor(["pin_code"]).redact(data) == {"pin_code": MASK, "x": 1}
    assert data == {"pin_code": "1234", "x": 1}


def test_safe_text_neutralises_escapes_and_bidi() -> None:
    hostile = "pay\x1b]52;c;ZXZpbA==\x07 \x1b[2J \u202egnp.exe\u200b \x9b31m"
    out = safe_text(hostile)
    for raw in ("\x1b", "\x07", "\u202e", "\u200b", "\x9b"):
        assert raw not in out
    assert "\\x1b]52" in out and "\\u202e" in out and "\\x9b" in out


def test_safe_text_shortens_huge_values_quickly() -> None:
    big = "A" * 10_000_000
    out = safe_text(big, 80)
    assert len(out) <= 80
    assert "+9,999" in out  # says how much was cut


def test_safe_text_multiline_keeps_newlines_only() -> None:
    assert safe_text("a\nb\rc", multiline=True) == "a\nb\\rc"
    assert safe_text("a\nb") == "a\\nb"


def test_huge_strings_are_cut_in_redacted_copies() -> None:
    from sentinel.redact import MAX_KEPT_CHARS

    out = redact({"blob": "x" * 10_000_000, "to": "ACC-1"})
    assert len(out["blob"]) < MAX_KEPT_CHARS + 100
    assert out["blob"].endswith("chars not kept]") and "+9,934,464" in out["blob"]
    assert out["to"] == "ACC-1"
