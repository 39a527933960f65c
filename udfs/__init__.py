"""PyFlink functions that wrap the feature code and the models."""
