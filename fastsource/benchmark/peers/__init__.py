"""The peers fastsource is measured against (`fastsource bench --peers`, run by `peers_suite.py`): each a
program of its own (aiokafka, Ray Data, Flink's KafkaSource through Maven and Java)."""
