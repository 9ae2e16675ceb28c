"""The model gateway: one interface for chat, streaming and embeddings over every provider.

Nothing outside this package imports the ``openai`` SDK or ``llama_cpp``. Callers use
:mod:`agents.providers.gateway`, which resolves the provider, times the call and writes the
usage record.
"""
