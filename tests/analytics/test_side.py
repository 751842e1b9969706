"""A question's side parts: on connections of their own, lent again after a good answer or a
bad question, closed after a connection error, all closed at the end; and side by side."""

from __future__ import annotations

import threading
from typing import Any, cast

import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from analytics.clickhouse import open_clickhouse
from analytics.side import SideParts


class Connection:
    def __init__(self, number: int) -> None:
        self.number = number
        self.closed = False

    def close(self) -> None:
        self.closed = True


class Factory:
    def __init__(self) -> None:
        self.opened: list[Connection] = []

    def __call__(self) -> Client:
        self.opened.append(Connection(len(self.opened)))
        return cast(Client, self.opened[-1])


def number(client: Any) -> int:
    return int(client.number)


def test_a_connection_is_lent_again_after_an_answer_or_a_bad_question() -> None:
    factory = Factory()
    side = SideParts(factory, 2)

    assert side.submit(number).result() == 0

    def bad_question(client: Any) -> None:
        raise DatabaseError("Code: 47. Unknown identifier")

    with pytest.raises(DatabaseError):
        side.submit(bad_question).result()
    assert side.submit(number).result() == 0
    assert len(factory.opened) == 1
    side.close()
    assert factory.opened[0].closed


def test_a_connection_that_failed_is_closed_and_a_new_one_opened() -> None:
    factory = Factory()
    side = SideParts(factory, 2)

    def lost(client: Any) -> None:
        raise OperationalError("connection refused")

    with pytest.raises(OperationalError):
        side.submit(lost).result()
    assert factory.opened[0].closed
    assert side.submit(number).result() == 1
    side.close()


def test_parts_run_side_by_side_each_on_its_own_connection() -> None:
    factory = Factory()
    side = SideParts(factory, 2)
    both = threading.Barrier(2, timeout=10)  # broken (an error) unless both wait at once

    def meet(client: Any) -> int:
        both.wait()
        return number(client)

    first, second = side.submit(meet), side.submit(meet)

    assert {first.result(), second.result()} == {0, 1}
    side.close()


def test_embedded_parts_answer_beside_the_shared_client(
    clickhouse: Client, clickhouse_url: str
) -> None:
    """chDB serves other connections to its one engine while the shared one is open."""
    side = SideParts(lambda: open_clickhouse(clickhouse_url), 2)
    try:
        answers = [side.submit(lambda c, n=n: c.command(f"SELECT {n} + 1")) for n in range(4)]
        assert [int(cast(int, a.result())) for a in answers] == [1, 2, 3, 4]
        assert clickhouse.command("SELECT 1") == 1
    finally:
        side.close()
