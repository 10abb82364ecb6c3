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


def test_secret_names_match_across_case_and_separators() -> None:
    r = Redactor()
    for name in ("pwd", "DB_PASS", "db-password", "apiKey", "x_api_key", "X-Api-Key", "auth",
                 "clientSecret", "AccountKey", "ssn"):  # fmt: skip
        assert r.is_secret_key(name), name
    # Whole-word markers do not swallow ordinary names.
    for name in ("author", "passenger", "compass", "business_name", "amount", "to", "path"):
        assert not r.is_secret_key(name), name


def test_secrets_inside_free_text_are_masked_and_the_rest_kept() -> None:
    cases = {
        "connect with password=S3cr3t-Pa55 please": "connect with password=[REDACTED] please",
        'curl -H "X-Api-Key: abcd1234efgh" https://x': 'curl -H "X-Api-Key: [REDACTED]" https://x',
        "postgresql://u:SECRETPW@h:5432/db?ssl=1": "postgresql://u:[REDACTED]@h:5432/db?ssl=1",
        "redis://:p@ss@cache:6379/0": "redis://:[REDACTED]@cache:6379/0",
        "https://x.com/?password=abc&x=1": "https://x.com/?password=[REDACTED]&x=1",
        "Authorization: Basic dXNlcjpwYXNzd29yZA==": "Authorization: [REDACTED]",
        "got Basic dXNlcjpwYXNzd29yZA== back": "got Basic [REDACTED] back",
        "Cookie: a=1; sid=zzz\nnext": "Cookie: [REDACTED]\nnext",
        'body {"password": "x y z", "ok": 1}': 'body {"password": "[REDACTED]", "ok": 1}',
        "upstream refused api_key=AK-998877": "upstream refused api_key=[REDACTED]",
        "pw=Q7z9": "pw=[REDACTED]",
        "sk_live_abcdefghijklmnopqrstuvwx12": "[REDACTED]",
        "glpat-abcdefghijklmnopqrstuv": "[REDACTED]",
    }
    for text, want in cases.items():
        assert redact(text) == want, text
    # Ordinary text is left alone.
    for text in ("Basic information about it", "at 12:30 amount=5 to=ACC-1", "author: Ann"):
        assert redact(text) == text


def test_name_value_pair_lists_mask_the_value_of_secret_names() -> None:
    out = redact(
        {"headers": [{"name": "password", "value": "v1"}, {"Name": "X-Api-Key", "Value": "v2"},
                     {"name": "Accept", "value": "json"}]}
    )  # fmt: skip
    assert out["headers"] == [
        {"name": "password", "value": MASK},
        {"Name": "X-Api-Key", "Value": MASK},
        {"name": "Accept", "value": "json"},
    ]


def test_extra_keys_apply_inside_text_too() -> None:
    assert Redactor(["tenant_code"]).redact("tenant-code=XYZ ok") == "tenant-code=[REDACTED] ok"


def test_detect_secrets_plugins_are_used_when_installed(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from sentinel import redact as mod

    pytest.importorskip("detect_secrets")
    monkeypatch.setattr(mod, "_plugin_patterns", None)
    assert mod.plugin_patterns(), "installed detect-secrets plugins give patterns"
    monkeypatch.setattr(mod, "_plugin_patterns", None)
    monkeypatch.setenv("SENTINEL_DETECT_SECRETS", "0")
    assert mod.plugin_patterns() == ()
