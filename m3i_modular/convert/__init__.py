"""Converters from other frameworks' checkpoints and configs (scripts/convert_*.py are their CLIs)."""
