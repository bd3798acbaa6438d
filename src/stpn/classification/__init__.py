"""Backbone pre-training as an object classifier on the annotated boxes of a video dataset."""
