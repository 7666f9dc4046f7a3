"""Adapters to AWS and LiveKit. Each takes an optional client and turns errors into domain errors."""
