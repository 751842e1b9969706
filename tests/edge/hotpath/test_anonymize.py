"""Full IPs never leave the process."""

from __future__ import annotations

from edge.hotpath.anonymize import IpAnonymizer, ip_prefix


def test_ip_is_stored_hashed_with_a_daily_salt_and_a_prefix() -> None:
    anonymizer = IpAnonymizer("secret-0123456789abcdef")
    day_1 = anonymizer.hash("203.0.113.7", 1_700_000_000_000)
    assert day_1 == anonymizer.hash("203.0.113.7", 1_700_000_000_000 + 1000)
    assert day_1 != anonymizer.hash("203.0.113.7", 1_700_000_000_000 + 86_400_000)
    assert "203.0.113.7" not in day_1
    assert ip_prefix("203.0.113.7") == "203.0.113.0/24"
    assert ip_prefix("2001:db8:1234:5678::1") == "2001:db8:1234::/48"
    assert ip_prefix("::ffff:203.0.113.7") == "203.0.113.0/24"
    assert ip_prefix("junk") == ""
