"""Stage 7, Keras objects: the loss, the metric, the regularizer and activity penalties."""
