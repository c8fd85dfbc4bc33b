"""Benchmarks: ``python -m bench`` (what ``./run.sh bench`` runs). Not part of the module or its tests."""
