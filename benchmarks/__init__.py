"""Benchmarks run by `make bench`: each module prints a table of medians."""
