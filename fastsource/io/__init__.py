"""Input and output outside the read path: the Kafka admin client for metadata and offsets, and sinks."""
