"""Sequencing: each capability's I/O around its pure rules in domain/ (the module of the same name)."""
