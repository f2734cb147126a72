"""Greet visitors."""
