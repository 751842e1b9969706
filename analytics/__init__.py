"""invite-edge analytics: the click pipeline into ClickHouse and the API marketing teams read."""
