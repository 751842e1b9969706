"""`invite partner list` and `invite link list` as an operator runs them."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import redis

from edge.registry.paging import encode_cursor
from tests.conftest import RedisServer
from tests.edge.cli.test_cli import _invite


@pytest.fixture
def registry_env(
    tmp_path: Path, redis_server: RedisServer, redis_client: redis.Redis
) -> dict[str, str]:
    env = {"INVITE_REDIS_URL": redis_server.url}
    for args in (["ib-1", "--type", "ib", "--name", "Atlas Capital"],
                 ["sub-1", "--parent", "ib-1", "--name", "Brook Trading"],
                 ["sub-2", "--parent", "ib-1", "--status", "suspended"],
                 ["solo", "--name", "Solo"]):
        assert _invite(tmp_path, "partner", "add", *args, **env).returncode == 0
    for campaign in ("tg", "yt"):
        created = _invite(tmp_path, "link", "create", "sub-1", "--campaign", campaign, **env)
        assert created.returncode == 0, created.stderr
    return env


@pytest.mark.servers
def test_partner_list_prints_a_table_with_the_counts(
    tmp_path: Path, registry_env: dict[str, str]
) -> None:
    result = _invite(tmp_path, "partner", "list", **registry_env)
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["PARTNER", "NAME", "TYPE", "STATUS", "LEVEL", "PARENT", "CHILDREN",
                              "DOWNLINE", "LINKS"]
    assert [row.split()[0] for row in rows] == ["ib-1", "solo", "sub-1", "sub-2"]
    assert rows[0].split() == ["ib-1", "Atlas", "Capital", "ib", "active", "1", "-", "2", "2",
                               "0"]
    assert rows[2].split()[-1] == "2"


@pytest.mark.servers
def test_partner_list_filters_and_pages_like_the_api(
    tmp_path: Path, registry_env: dict[str, str]
) -> None:
    children = _invite(tmp_path, "partner", "list", "--parent", "ib-1", "--status", "active",
                       "--json", **registry_env)
    assert [p["partnerId"] for p in orjson.loads(children.stdout)["items"]] == ["sub-1"]
    found = _invite(tmp_path, "partner", "list", "--q", "BROOK", "--json", **registry_env)
    assert [p["partnerId"] for p in orjson.loads(found.stdout)["items"]] == ["sub-1"]
    roots = _invite(tmp_path, "partner", "list", "--roots", "--json", **registry_env)
    assert [p["partnerId"] for p in orjson.loads(roots.stdout)["items"]] == ["ib-1", "solo"]

    first = _invite(tmp_path, "partner", "list", "--limit", "3", **registry_env)
    assert first.stdout.splitlines()[-1].startswith("more partners: add --cursor ")
    cursor = first.stdout.splitlines()[-1].rsplit(" ", 1)[1]
    rest = _invite(tmp_path, "partner", "list", "--cursor", cursor, "--json", **registry_env)
    page = orjson.loads(rest.stdout)
    assert ([p["partnerId"] for p in page["items"]], page["nextCursor"]) == (["sub-2"], None)


@pytest.mark.servers
def test_link_list_prints_the_partners_links_newest_first(
    tmp_path: Path, registry_env: dict[str, str]
) -> None:
    result = _invite(tmp_path, "link", "list", "sub-1", "--base-url", "https://go.broker.test",
                     **registry_env)
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split()[:4] == ["CODE", "STATUS", "CAMPAIGN", "SUB-ID"]
    assert [row.split()[2] for row in rows] == ["yt", "tg"]
    assert all("https://go.broker.test/r/" in row for row in rows)
    as_json = _invite(tmp_path, "link", "list", "sub-1", "--json", **registry_env)
    assert [link["campaign"] for link in orjson.loads(as_json.stdout)["items"]] == ["yt", "tg"]
    empty = _invite(tmp_path, "link", "list", "solo", **registry_env)
    assert empty.stdout.strip() == "no links"


@pytest.mark.servers
def test_listing_an_unknown_partner_says_so(tmp_path: Path, registry_env: dict[str, str]) -> None:
    for args in (["link", "list", "nobody"], ["partner", "list", "--parent", "nobody"]):
        result = _invite(tmp_path, *args, **registry_env)
        assert result.returncode == 1
        assert "'nobody' does not exist" in result.stderr


@pytest.mark.parametrize("args", [
    ["partner", "list", "--limit", "0"],
    ["partner", "list", "--limit", "501"],
    ["partner", "list", "--limit", "٥"],
    ["partner", "list", "--status", "gone"],
    ["partner", "list", "--parent", "bad id"],
    ["partner", "list", "--parent", "x", "--roots"],
    ["partner", "list", "--q", "x" * 201],
    ["partner", "list", "--cursor", "junk!"],
    ["partner", "list", "--cursor", encode_cursor("links", "3")],
    ["link", "list"],
    ["link", "list", "bad id"],
    ["link", "list", "p", "--status", "paused"],
    ["link", "list", "p", "--cursor", encode_cursor("links", "x")],
], ids=lambda args: " ".join(args)[:40])
def test_bad_list_arguments_exit_2_with_one_line(tmp_path: Path, args: list[str]) -> None:
    result = _invite(tmp_path, *args)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("invite: ")


def test_list_commands_have_help(tmp_path: Path) -> None:
    for args in (["partner", "list", "--help"], ["link", "list", "--help"]):
        result = _invite(tmp_path, *args)
        assert result.returncode == 0
        assert "--cursor" in result.stdout
