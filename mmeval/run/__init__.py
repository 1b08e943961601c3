"""The run: questions -> prepared requests -> adapter -> predictions.jsonl, resumable and shardable."""
