"""granite-index."""
