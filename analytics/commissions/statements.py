"""A partner's statement for a month: who, which month and its state, the tier, totals by kind
and by level, the adjustments, and the lines; as JSON, CSV and PDF."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from clickhouse_connect.driver.client import Client
from fpdf import FPDF

from analytics.commissions import reads
from analytics.commissions.months import start_ms
from analytics.commissions.reads import LineFilter
from analytics.commissions.store import PeriodState
from analytics.export import neutralized_cell

# A statement's JSON and PDF list at most this many lines (the CSV has them all).
MAX_SHOWN_LINES: Final = 5_000
CSV_COLUMNS: Final = (
    "lineId", "period", "ts", "partnerId", "level", "sourcePartnerId", "userId", "eventId", "kind",
    "base", "rate", "multiplier", "amount", "currency", "planId", "planVersion", "tier", "status",
    "excluded", "reverses", "adjusts", "adjustsPeriod",
)
# Values that come from outside (ids, names): neutralised in CSV; amounts are ours.
_TEXT_COLUMNS: Final = frozenset({
    "lineId", "partnerId", "sourcePartnerId", "userId", "eventId", "planId", "tier", "reverses",
    "adjusts",
})


def statement(client: Client, partner_id: str, name: str | None, period: str,
              state: PeriodState, currency: str) -> dict[str, Any]:
    f = LineFilter(partner_id=partner_id, period=period)
    lines, _ = reads.page(client, f, MAX_SHOWN_LINES, None)
    summary = reads.totals(client, f)
    month_start = datetime.fromtimestamp(start_ms(period) / 1000, UTC)
    return {
        "partnerId": partner_id, "name": name, "period": period, **_state(state),
        "currency": currency, "tier": reads.tier_of(client, partner_id, period, month_start),
        "totals": {key: summary[key] for key in ("lines", "amount", "byKind", "byLevel")},
        "adjustments": summary["adjustments"],
        "lines": [reads.line_json(row) for row in lines],
        "linesTruncated": summary["lines"] > len(lines),
    }


def _state(state: PeriodState) -> dict[str, Any]:
    shown = state.to_json()
    return {key: shown[key] for key in ("status", "closedAt", "paidAt", "reference")}


def csv_rows(lines: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    """The lines as CSV (a header first), cells from outside neutralised (OWASP)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for row in lines:
        line = reads.line_json(row)
        writer.writerow([
            neutralized_cell(str(line[c] if line[c] is not None else ""))
            if c in _TEXT_COLUMNS else ("" if line[c] is None else line[c])
            for c in CSV_COLUMNS
        ])
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def _latin(text: object) -> str:
    """The PDF's core font holds Latin-1: anything else shows as '?'."""
    return str(text).encode("latin-1", "replace").decode("latin-1")


def pdf(body: dict[str, Any]) -> bytes:
    """The statement as a PDF (fpdf2): header, totals by kind and level, then the lines."""
    document = FPDF(orientation="L", unit="mm", format="A4")
    document.set_auto_page_break(auto=True, margin=12)
    document.add_page()
    document.set_font("Helvetica", "B", 16)
    document.cell(0, 10, _latin(f"Commission statement {body['period']}"), new_x="LMARGIN",
                  new_y="NEXT")
    document.set_font("Helvetica", size=10)
    facts = [
        ("Partner", f"{body['partnerId']}" + (f" ({body['name']})" if body.get("name") else "")),
        ("Status", body["status"] + (f", paid: {body['reference']}" if body.get("reference")
                                     else "")),
        ("Tier", body.get("tier") or "-"),
        ("Total", f"{body['totals']['amount']} {body['currency']}"),
        ("Adjustments", f"{body['adjustments']['amount']} {body['currency']} "
                        f"({body['adjustments']['lines']} lines)"),
    ]
    for label, value in facts:
        document.cell(40, 6, _latin(label))
        document.cell(0, 6, _latin(value), new_x="LMARGIN", new_y="NEXT")
    document.ln(3)
    _table(document, "By kind", ("Kind", "Amount"),
           [(kind, amount) for kind, amount in body["totals"]["byKind"].items()], (60, 40))
    _table(document, "By level", ("Level", "Amount"),
           [(str(row["level"]), row["amount"]) for row in body["totals"]["byLevel"]], (60, 40))
    columns = ("Date", "Kind", "Level", "Event", "User", "From", "Base", "Rate", "Mult.",
               "Amount", "Note")
    widths = (24, 24, 12, 46, 24, 30, 26, 18, 14, 24, 35)
    rows = [(
        line["ts"][:10], line["kind"], str(line["level"]), line["eventId"][:28], line["userId"],
        line["sourcePartnerId"][:18], line["base"][:16], line["rate"], line["multiplier"],
        line["amount"],
        line["excluded"] or (f"adjusts {line['adjustsPeriod']}" if line["adjusts"] else "")
        or (f"reverses {line['reverses'][:12]}" if line["reverses"] else ""),
    ) for line in body["lines"]]
    _table(document, f"Lines ({body['totals']['lines']})", columns, rows, widths)
    if body["linesTruncated"]:
        document.cell(0, 6, _latin(f"The first {len(rows)} lines are shown; the CSV statement "
                                   "has them all."), new_x="LMARGIN", new_y="NEXT")
    return bytes(document.output())


def _table(document: FPDF, title: str, header: tuple[str, ...],
           rows: Sequence[Sequence[Any]], widths: tuple[int, ...]) -> None:
    document.set_font("Helvetica", "B", 11)
    document.cell(0, 8, _latin(title), new_x="LMARGIN", new_y="NEXT")
    document.set_font("Helvetica", "B", 8)
    for text, width in zip(header, widths, strict=True):
        document.cell(width, 6, _latin(text), border=1)
    document.ln()
    document.set_font("Helvetica", size=8)
    for row in rows:
        for text, width in zip(row, widths, strict=True):
            document.cell(width, 5, _latin(text), border=1)
        document.ln()
    document.ln(3)
