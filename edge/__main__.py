"""`python -m edge` is the `invite` command."""

from edge.cli import main

main()
