"""The `fastsource` command line: reads, the local broker, the demo and the benchmark."""
