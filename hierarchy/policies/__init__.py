"""Scheduling policies: heuristic baselines and learned actors, behind one interface."""
