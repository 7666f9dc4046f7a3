"""Lambda entry points: parse, call a service (services/), emit. Nothing else."""
