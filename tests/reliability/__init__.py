"""Reliability tests: real processes, real files."""
