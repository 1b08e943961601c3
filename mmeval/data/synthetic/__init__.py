"""The bundled synthetic benchmark: MMAD-format data drawn from a seed, so a fresh machine can run."""
