"""The ``keras.ops`` interpreter of a plan: lossdsl on JAX and PyTorch (any Keras 3 backend)."""
