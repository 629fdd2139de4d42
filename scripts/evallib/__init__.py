"""Evaluation helpers for the scripts: BEIR-format data sets and ranking metrics (not shipped)."""
