"""One redaction helper for every output: connection-string passwords and known secret values become `***`."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "***"
#: Shorter values are not replaced by value (they would mask ordinary words); patterns still catch them.
MIN_SECRET_LENGTH = 4

# libpq keyword values (quoted with backslash escapes, or bare) and key-like query parameters
_KEYWORD_VALUE = re.compile(
    r"""(?P<key>\b(?:password|passwd|pwd|api[_-]?key|apikey|secret[_-]?key|access[_-]?token|token)\s*[=:]\s*)"""
    r"""(?P<value>'(?:[^'\\]|\\.)*'|(?:[^\s"&,;\\]|\\.)+)""",
    re.IGNORECASE,
)
# the password in a URL's user info: scheme://user:password@host
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^\s:/@'\"]*:)(?P<value>[^\s@\"]*)@", re.IGNORECASE)


def _variants(secret: str) -> set[str]:
    """A secret as it may appear in text: raw, URL-encoded, SQL-quoted and libpq-escaped."""
    return {secret, quote(secret, safe=""), quote_plus(secret), secret.replace("'", "''"),
            secret.replace("\\", "\\\\").replace("'", "\\'"), json.dumps(secret)[1:-1], html.escape(secret),
            html.escape(secret, quote=False)}


class Redactor:
    """Masks connection-string passwords by pattern and the given secret values wherever they appear.

    Its repr never shows the secrets; `redact` is safe on any text (None passes through).
    """

    def __init__(self, secrets: Iterable[str | None] = ()):
        values = {v for s in secrets if s and len(s) >= MIN_SECRET_LENGTH for v in _variants(s)}
        self._secrets = tuple(sorted(values, key=len, reverse=True))

    def __call__(self, text):
        return self.redact(text)

    def redact(self, text):
        if not text:
            return text
        text = str(text)
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        text = _KEYWORD_VALUE.sub(lambda m: m.group("key") + MASK, text)
        return _URL_PASSWORD.sub(lambda m: m.group("head") + MASK + "@", text)

    def with_secrets(self, secrets: Iterable[str | None]) -> Redactor:
        extended = Redactor(secrets)
        extended._secrets = tuple(sorted(set(self._secrets) | set(extended._secrets), key=len, reverse=True))
        return extended

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secret forms)"


#: Pattern-only redaction, for code that knows no secret values (the warehouse, the ledger).
redact = Redactor().redact


def conninfo_password(setting: str | None) -> str | None:
    """The password inside a catalog setting, a libpq conninfo or a URL, if it has one (to redact by value)."""
    if not setting:
        return None
    url = _URL_PASSWORD.search(setting)
    if url and url.group("value"):
        from urllib.parse import unquote

        return unquote(url.group("value"))
    keyword = re.search(r"\bpassword\s*=\s*('(?:[^'\\]|\\.)*'|(?:[^\s\\]|\\.)+)", setting, re.IGNORECASE)
    if keyword is None:
        return None
    value = keyword.group(1)
    if value.startswith("'"):
        value = value[1:-1]
    return re.sub(r"\\(.)", r"\1", value)
