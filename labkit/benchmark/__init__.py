"""AlgoPerf-style optimiser benchmarking at CPU scale (the lab ``labs/optimizer_benchmark.ipynb``):
``workloads`` (what is trained, to which validation target), ``runner`` (trials, the external and
self-tuning rules)."""
