"""Anomaly detectors: (query, templates) -> anomaly map, image score and decision threshold."""
