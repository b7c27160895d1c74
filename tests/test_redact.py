"""ds_lsp.redact: what a log line or a message shows of a URL or a secret."""

from __future__ import annotations

import pytest

from ds_lsp.redact import HIDDEN, redact_text, redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://bob:hunter2@127.0.0.1:8080/v1", f"http://{HIDDEN}@127.0.0.1:8080/v1"),
        ("https://sk-token@api.example.com/v1", f"https://{HIDDEN}@api.example.com/v1"),
        ("http://bob:p@ss@host:1/v1", f"http://{HIDDEN}@host:1/v1"),  # "@" in the password
        ("http://bob:pw@[::1]:8080/v1", f"http://{HIDDEN}@[::1]:8080/v1"),
    ],
)
def test_credentials_in_a_url_are_hidden_and_the_rest_stays(url, shown):
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    "url", ["http://localhost:11434/v1", "http://host/path@v1", "https://api.deepseek.com/v1", ""]
)
def test_a_url_without_credentials_is_unchanged(url):
    assert redact_url(url) == url


def test_secrets_and_url_credentials_in_text_are_hidden():
    text = "POST http://bob:hunter2@h:8080/v1 failed; key sk-SECRET was refused"

    shown = redact_text(text, ["sk-SECRET", ""])

    assert "hunter2" not in shown and "sk-SECRET" not in shown
    assert shown == f"POST http://{HIDDEN}@h:8080/v1 failed; key {HIDDEN} was refused"


def test_a_password_holding_an_at_sign_is_hidden_whole_in_text():
    shown = redact_text("GET http://bob:p@ss@host:1/v1 failed", [])

    assert shown == f"GET http://{HIDDEN}@host:1/v1 failed"
