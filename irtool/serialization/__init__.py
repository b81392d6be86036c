"""Keras 3 object configs."""
