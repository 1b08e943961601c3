"""A stand-in for the little of Pillow that the Anomaly-OV backend touches (tests only): sizes, not pixels."""
