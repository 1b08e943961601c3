"""Reference figures shipped with mmeval: MMAD human baselines and published model results."""
