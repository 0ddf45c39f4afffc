"""Training recipes for Granite-style encoders (see issue: trainer/)."""
