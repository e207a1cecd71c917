"""Stage 6, backends: interpreters of a plan (TensorFlow; text for the exporter)."""
