"""Funnel events from the broker: KYC, deposits, withdrawals, trades, reversals, accounts."""
