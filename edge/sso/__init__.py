"""The SSO hook: registrations credited to partners, cTrader calls, the outbox, notifications."""
