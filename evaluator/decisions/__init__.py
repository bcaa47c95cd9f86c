"""Decisions made from evaluations: paired comparison (compare) and registry promotion (promote)."""
