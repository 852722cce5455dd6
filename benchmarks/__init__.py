"""Benchmarks: scripts that print a table and save JSON (with the machine's description) in results/."""
