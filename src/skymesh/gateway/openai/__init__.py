"""The OpenAI-compatible face of the gateway (see :mod:`skymesh.gateway.openai.app`)."""
