"""The digital twin of an edge-cloud container platform (NumPy only, no network, no torch)."""
