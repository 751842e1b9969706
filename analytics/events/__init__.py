"""The broker's funnel events in ClickHouse: stored once, credited to partners, asked about."""
