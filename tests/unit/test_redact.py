"""Passwords in DSNs are hidden wherever text may carry one (errors, logs, reprs, the CLI)."""

from __future__ import annotations

import pytest

from actorflow._redact import redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://app:s3cret@db.example:5432/prod", "postgresql://app:***@db.example:5432/prod"),
        ("postgres://app:s3cret@db/prod?sslmode=require", "postgres://app:***@db/prod?sslmode=require"),
        ("mysql://root:pw@localhost/x", "mysql://root:***@localhost/x"),
        ("kafka://u:pw@broker:9092", "kafka://u:***@broker:9092"),
        ("postgresql://app:s3cret@db", "postgresql://app:***@db"),
        # no password
        ("postgresql://db.example:5432/prod", "postgresql://db.example:5432/prod"),
        ("postgresql://localhost/prod", "postgresql://localhost/prod"),
        # a user with no password
        ("postgresql://app@db.example/prod", "postgresql://app@db.example/prod"),
        ("postgresql://app:@db/prod", "postgresql://app:***@db/prod"),
        # IPv6 hosts
        ("postgresql://app:s3cret@[::1]:5432/prod", "postgresql://app:***@[::1]:5432/prod"),
        ("postgresql://[::1]:5432/prod", "postgresql://[::1]:5432/prod"),
        ("postgresql://app@[2001:db8::1]/prod", "postgresql://app@[2001:db8::1]/prod"),
        # a percent-encoded password, and one with a raw '@' in it
        ("postgresql://app:p%40ss%3Aw@db/prod", "postgresql://app:***@db/prod"),
        ("postgresql://app:p@ss@db/prod", "postgresql://app:***@db/prod"),
        # libpq key/value
        ("host=db dbname=prod user=app password=s3cret", "host=db dbname=prod user=app password=***"),
        ("host=db password='se cret' dbname=prod", "host=db password=*** dbname=prod"),
        ("host=db password = 's\\'q' dbname=prod", "host=db password = *** dbname=prod"),
        ("PASSWORD=s3cret host=db", "PASSWORD=*** host=db"),
        ("host=db sslpassword=keypw", "host=db sslpassword=***"),
        # query parameters
        ("postgresql://db/prod?password=s3cret&sslmode=require", "postgresql://db/prod?password=***&sslmode=require"),
        ("postgresql://db/prod?user=app&password=s3cret", "postgresql://db/prod?user=app&password=***"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_several_dsns_in_one_text() -> None:
    text = (
        "could not connect to postgresql://a:one@h1/db (tried host=h2 password=two dbname=db); "
        "fallback 'postgres://b:three@[::1]:5433/db?password=four&x=1' failed"
    )
    out = redact(text)
    for secret in ("one", "two", "three", "four"):
        assert f":{secret}@" not in out and f"={secret}" not in out
    assert out == (
        "could not connect to postgresql://a:***@h1/db (tried host=h2 password=*** dbname=db); "
        "fallback 'postgres://b:***@[::1]:5433/db?password=***&x=1' failed"
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "no dsn here",
        "connection to server at 127.0.0.1, port 1 failed: Connection refused",
        "host=db dbname=prod user=app",
        "mail me at someone@example.com or see https://example.com/a:b@c",
        "http://example.com:8080/path?q=1",
        "ratio 3:4 @ noon",
    ],
)
def test_text_without_password_unchanged(text: str) -> None:
    assert redact(text) == text
