"""Lambda entry points: parse, wire, call the coordinator, emit. Nothing else."""
