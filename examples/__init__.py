"""Runnable scripts that reproduce the classic experiments (importable, so the tests run them)."""
