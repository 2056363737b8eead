"""Output outside the read path: sinks."""
