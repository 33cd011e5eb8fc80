"""Benchmark harness for fastsoftmax: candidates, timing, memory, accuracy and the report.

Run it through ``python bench/run.py`` (see ``--help``); the modules here are not a public API.
"""
