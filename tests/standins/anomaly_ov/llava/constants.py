"""Stand-in for Anomaly-OV's llava/constants.py (tests only)."""

IMAGE_TOKEN_INDEX = -200
DEFAULT_IMAGE_TOKEN = "<image>"
