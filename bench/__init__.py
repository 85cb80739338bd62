"""actbench: how activations, inits, learning rates and accumulation change training."""

__version__ = "0.1.0"
