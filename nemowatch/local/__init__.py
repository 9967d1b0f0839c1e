"""The local NemoVideo-compatible backend: shares the API contract modules, nothing else."""
