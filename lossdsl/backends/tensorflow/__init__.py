"""The TensorFlow interpreter of a plan and its TF-only fast paths."""
