"""Operating the embedded local platform: service lifecycle for `make services-up` and friends."""
