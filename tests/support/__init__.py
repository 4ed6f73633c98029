"""Support code for tests/ and benchmarks/ (harnesses, pollers, reference implementations);
production packages never import it."""
