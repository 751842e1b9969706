"""The redirect hot path: resolve, classify, attribute, record the click, redirect."""
