"""The benchmarks bench/run.py runs: one module each, registered in run.py's BENCHMARKS."""
