"""What logs and messages may show of a URL."""

from __future__ import annotations

from edge.logs import redact_url


def test_redact_url_leaves_urls_without_password_alone() -> None:
    assert redact_url("chdb:///var/clickhouse") == "chdb:///var/clickhouse"
    assert redact_url("https://u:p@h:8443/") == "https://u:***@h:8443/"


def test_redact_url_hides_redis_passwords_and_secret_parameters() -> None:
    assert redact_url("redis://:pw@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert redact_url("unix:///run/r.sock?password=pw&db=0") == "unix:///run/r.sock?password=***&db=0"
    assert redact_url("https://h/x?token=abc#top") == "https://h/x?token=***#top"


def test_redact_url_hides_only_the_token() -> None:
    assert redact_url("GET https://h/x?brokerCrmName=b&token=s3cr3t&userId=1") == (
        "GET https://h/x?brokerCrmName=b&token=***&userId=1"
    )
