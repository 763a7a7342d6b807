"""Kafka adapters (kafka-python): a consumer-group source, a producer sink, topic creation."""
