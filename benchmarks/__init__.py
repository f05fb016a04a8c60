"""Speed and parity scripts that print ratios (see README.md): importable by the tests as
``benchmarks.NAME``, run as ``python benchmarks/NAME.py``."""
