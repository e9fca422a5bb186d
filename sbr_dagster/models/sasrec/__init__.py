"""SASRec (Kang & McAuley 2018) with full-softmax cross-entropy (Klenitskiy & Vasilev 2023):
settings, windows, network, epochs, inference.

Only ``config``, ``windows`` and ``model`` are cheap to import; the rest import TensorFlow.
"""
