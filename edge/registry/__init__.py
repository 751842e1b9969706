"""The partner registry: partners and their IB trees, links, partner tokens, their admin API."""
