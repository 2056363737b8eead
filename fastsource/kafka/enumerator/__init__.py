"""The enumerator role: what to read (subscribers), where to start and stop (offsets initializers), and the
split enumerator that discovers partitions and assigns splits. Runs on the coordinator's thread."""
