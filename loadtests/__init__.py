"""Load tests: slow benchmarks of the edge, run with `make bench-edge`, never by pytest."""
