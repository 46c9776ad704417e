"""cnn-probe: see what a convolutional network learned."""

__version__ = "0.1.0"
