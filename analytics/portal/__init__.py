"""The partner portal: one-time sign-in links, sessions, and a partner's own pages (its links,
stats and funnel with its downline, its commissions and statements), never another partner's."""
