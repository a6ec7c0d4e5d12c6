"""The benchmark harness: a fake upstream, a load generator and the one-command report.

Run it from the repository root: `python -m bench.run --quick` (see bench/README.md).
Nothing here is imported by the proxy; everything talks only to 127.0.0.1.
"""
