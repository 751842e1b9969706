"""Commissions: versioned plans, the ledger computed from the credited events, monthly periods
and statements."""
