"""The batcher's way into ClickHouse: click_line's text through `clicks_ingest` into `clicks`.

Every event, whether it goes as the edge wrote it or is rewritten by click_row, must end up as
the row click_row makes of it; a line ClickHouse refuses is found and reported, the others go in.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest

from analytics.clickhouse import Client
from analytics.enrich import CLICK_COLUMNS, click_line, click_row
from analytics.insert import CLICKS_INGEST, InsertOutcome, insert_bisecting, insert_new_clicks
from analytics.schema import CLICK_VIEWS
from edge.errors import BadEvent
from tests.analytics.conftest import click_event

GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)


def _without(*names: str) -> dict[str, Any]:
    event = click_event()
    for name in names:
        del event[name]
    return event


# (what it is, the payload as it sits in the stream, whether it goes as it came)
CASES: list[tuple[str, bytes | str, bool]] = [
    ("as the edge writes it", orjson.dumps(click_event()), True),
    ("a preview bot", orjson.dumps(click_event(kind="preview", user_agent=GOOGLEBOT)), True),
    ("a person with a bot's user agent", orjson.dumps(click_event(user_agent=GOOGLEBOT)), True),
    ("an orphan", orjson.dumps(click_event(partner_id="", ancestors=[], outcome="orphan")), True),
    ("not the first click", orjson.dumps(click_event(first_click=False, user_agent=IPHONE)), True),
    ("nulls", orjson.dumps(click_event(
        campaign=None, referer=None, ancestors=None, visitor_id=None, method=None, sub_id=None,
    )), True),
    ("optional fields left out", orjson.dumps(
        _without("first_click", "visitor_id", "method", "sub_id", "referer", "campaign")
    ), True),
    ("text of every script", orjson.dumps(click_event(
        referer="https://www.пример.рф/путь?q=\"x\"\\n", campaign="春\u0000\t\"'", country="",
    )), True),
    ("fields the batcher does not know", orjson.dumps(
        click_event(extra={"nested": [1, {"x": None}]}, later_field=1.5)
    ), True),
    ("decoded by the client", orjson.dumps(click_event()).decode(), True),
    ("trailing white space", orjson.dumps(click_event()) + b" \n", True),
    ("spaced out JSON", b'{ "click_id" : "%s", "ts": 1763000000123, "kind": "person",\n'
     b' "outcome": "credited", "partner_id": "p", "ancestors": [ "a" ] }'
     % str(uuid.uuid4()).encode(), True),
    ("an upper-case click_id", orjson.dumps(click_event(click_id=str(uuid.uuid4()).upper())),
     False),
    ("a click_id in braces", orjson.dumps(click_event(click_id=f"{{{uuid.uuid4()}}}")), False),
    ("first_click null", orjson.dumps(click_event(first_click=None)), False),
    ("first_click as a number", orjson.dumps(click_event(first_click=0)), False),
    ("a derived field already there", orjson.dumps(click_event(device="tablet", is_human=0)),
     False),
]


def _row_of(clickhouse: Client, click_id: str) -> list[Any]:
    names = [name for name, _ in CLICK_COLUMNS]
    select = ", ".join(
        "toString(click_id)" if name == "click_id"
        else "toUnixTimestamp64Milli(ts)" if name == "ts" else name
        for name in names
    )
    found = clickhouse.query(
        f"SELECT {select} FROM invite.clicks WHERE click_id = toUUID(%(id)s)",  # noqa: S608
        parameters={"id": click_id},
    ).result_rows
    assert len(found) == 1, found
    return list(found[0])


@pytest.mark.parametrize(("case", "payload", "as_it_came"), CASES, ids=[c[0] for c in CASES])
def test_every_event_becomes_the_row_click_row_makes_of_it(
    clickhouse: Client, case: str, payload: bytes | str, as_it_came: bool
) -> None:
    expected = click_row(orjson.loads(payload))
    click_id, ts, line = click_line(payload)
    assert (click_id, ts) == (expected[0], expected[1])
    raw = payload.encode() if isinstance(payload, str) else payload
    assert line.startswith(raw.rstrip()[:-1]) is as_it_came, line

    outcome = insert_new_clicks(clickhouse, [click_id], [ts], [line], ["1-1"], token_prefix=case)

    assert (outcome.inserted, outcome.refused) == (1, [])
    stored = _row_of(clickhouse, click_id)
    expected[7] = list(expected[7])
    assert stored == expected


def test_an_event_as_the_edge_writes_it_goes_with_the_derived_fields_appended() -> None:
    payload = orjson.dumps(click_event(kind="preview", user_agent=GOOGLEBOT))
    _, _, line = click_line(payload)
    assert line[: len(payload) - 1] == payload[:-1]
    derived = orjson.loads(line)
    assert {name: derived[name] for name in (
        "is_human", "referer_host", "device", "os", "browser", "bot_family",
    )} == {
        "is_human": 0, "referer_host": "google.com", "device": "bot", "os": "",
        "browser": "", "bot_family": "Googlebot",
    }


@pytest.mark.parametrize("payload", [
    None, b"", b"[]", b"not json", orjson.dumps(click_event(ts="yesterday")),
    orjson.dumps(click_event(kind="robot")), orjson.dumps(click_event(ancestors=[1])),
    orjson.dumps(click_event(user_agent="x" * 5000)), orjson.dumps(click_event(method=3)),
])
def test_what_click_row_refuses_click_line_refuses_too(payload: bytes | None) -> None:
    with pytest.raises(BadEvent):
        click_line(payload)


def test_a_line_clickhouse_refuses_is_found_by_halving_and_the_others_go_in(
    clickhouse: Client,
) -> None:
    good = [click_line(orjson.dumps(click_event()))[2] for _ in range(6)]
    # Python reads the last of two equal keys; ClickHouse refuses the row.
    twice = orjson.dumps(click_event())[:-1] + b',"kind":"person"}'
    lines = [*good[:3], click_line(twice)[2], *good[3:]]
    outcome = InsertOutcome()

    insert_bisecting(clickhouse, CLICKS_INGEST, lines, [f"1-{i}" for i in range(7)],
                     list(range(7)), "refused", outcome)

    assert outcome.inserted == 6
    assert [index for index, _ in outcome.refused] == [3]
    assert "Duplicate field" in outcome.refused[0][1]
    assert int(clickhouse.command("SELECT count() FROM invite.clicks")) == 6  # type: ignore[call-overload]


def test_the_ingest_table_has_every_column_of_clicks(clickhouse: Client) -> None:
    def columns(table: str) -> dict[str, str]:
        return dict(clickhouse.query(
            "SELECT name, type FROM system.columns WHERE database = 'invite' "
            "AND table = %(table)s AND name != 'inserted_at'", parameters={"table": table},
        ).result_rows)

    ingest, clicks = columns(CLICKS_INGEST.name), columns("clicks")
    assert ingest.pop("ts") == "Int64"  # ms since the epoch, as the edge writes it
    clicks.pop("ts")
    assert ingest == clicks


def test_an_insert_repeated_with_its_token_counts_once_in_clicks_and_every_view(
    clickhouse: Client,
) -> None:
    events = [click_event(partner_id="sub", ancestors=["master", "ib"]) for _ in range(40)]
    prepared = [click_line(orjson.dumps(event)) for event in events]
    lines = [line for _, _, line in prepared]
    keys = [f"7-{index}" for index in range(len(lines))]

    def views() -> dict[str, int]:
        return {view.table: int(clickhouse.command(  # type: ignore[call-overload]
            f"SELECT sum(clicks) FROM invite.{view.table}"  # noqa: S608
        )) for view in CLICK_VIEWS}

    insert_bisecting(clickhouse, CLICKS_INGEST, lines, keys, list(range(40)), "again",
                     InsertOutcome())
    first = views()
    # A retry after a lost reply: the same lines under the same token, the duplicate check
    # bypassed. ClickHouse drops the block in `clicks` and in every view.
    insert_bisecting(clickhouse, CLICKS_INGEST, lines, keys, list(range(40)), "again",
                     InsertOutcome())

    assert int(clickhouse.command("SELECT count() FROM invite.clicks")) == 40  # type: ignore[call-overload]
    assert views() == first
    assert first["clicks_totals_hourly"] == 40
