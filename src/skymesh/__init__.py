"""skymesh: a decentralized cloud for the AI era."""

__version__ = "0.1.0"
