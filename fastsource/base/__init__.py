"""The generic FLIP-27 machinery (Flink's flink-connector-base): split and enumerator protocols, the
reader<->coordinator events, watermarks, the transport protocol and the source reader base. Imports
nothing of Kafka."""
