"""Request transforms applied while preparing requests (domain knowledge, an expert's hint)."""
