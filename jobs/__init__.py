"""Pipeline steps: importable functions, each also a command (`python -m jobs.<step>`)."""
