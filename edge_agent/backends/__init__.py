"""Backends: what an edge agent controls (the simulated site; Kubernetes later)."""
