"""Run the benchmark suite (fastsource/benchmark/suite.py): `python bench/run.py [--quick]`, or against what
users would pick instead (Flink, Ray Data, aiokafka): `python bench/run.py --peers --rounds 3`.
Figures of the full run go to bench/RESULTS.md with the command that produced them."""
from fastsource.benchmark.suite import main

if __name__ == "__main__":
    main()
