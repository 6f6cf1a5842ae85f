"""Benchmarks behind `hqray bench ...`; recorded results live in the repository's benchmarks/."""
