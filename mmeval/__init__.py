"""mmeval: reproducible evaluation of multimodal LLMs as industrial quality inspectors (MMAD format)."""

__version__ = "0.1.0"
