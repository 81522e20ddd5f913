"""Hide passwords in text that may contain connection strings (DSNs).

A DSN often carries a password: ``postgresql://app:s3cret@db/prod``, libpq's
``host=db password=s3cret``, ``...?password=s3cret``. Such text ends up in error messages
(a driver error may quote its conninfo), logs, ``repr()`` of adapters and the CLI's output,
all of which are read by people and tools that must never learn the password. Every place
that shows a DSN, or text that may contain one, passes it through :func:`redact` first.

Redaction is textual and conservative: it replaces whatever follows the password marker up
to the DSN's own delimiters, so it works on a DSN embedded anywhere in a longer text and on
DSNs that do not parse.
"""

from __future__ import annotations

import re

__all__ = ["MASK", "redact"]

MASK = "***"

# scheme://user:password@host...  The userinfo runs to the LAST '@' before the host part
# ends (a '/', '?', '#' or whitespace), so an unencoded '@' inside the password is covered
# too. The user part has no ':' (the first ':' separates user and password).
_URL = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@]*:)"
    r"(?P<secret>[^\s/?#]*)"
    r"(?=@[^\s@/?#]*(?:[/?#\s]|$))"
)

# libpq key/value: password=secret, password = 'se cret', password='it\'s'.
_KEYVALUE = re.compile(
    r"(?P<head>\b(?:ssl)?password\s*=\s*)"
    r"(?P<secret>'(?:[^'\\]|\\.)*'?|[^\s&#'][^\s&#]*)",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """Return ``text`` with the password of every DSN in it replaced by ``***``.

    Covers URLs (``scheme://user:secret@host`` for any scheme), libpq key/value pairs
    (``password=secret``, ``password='se cret'``) and the query-parameter form
    (``?password=secret&...``). Text without a password is returned unchanged.
    """
    if not text:
        return text
    text = _URL.sub(lambda m: m.group("head") + MASK, text)
    return _KEYVALUE.sub(lambda m: m.group("head") + MASK, text)
