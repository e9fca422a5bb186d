"""GRU4Rec (Hidasi et al. 2016): settings, network, session-parallel batching, optimizer, epochs, inference.

Only ``config``, ``batching`` and ``model`` are cheap to import; the rest import TensorFlow.
"""
