"""Honest evaluation: architecture-family-held-out splits and percentage-error metrics."""
