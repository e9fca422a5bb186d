"""Step 1: MovieLens files -> ratings -> sessions under a definition -> cleansed -> a time split.

Also the session statistics, the invariants the checks enforce, the larger-than-memory path
(``streaming``) and the arrays the models consume (``arrays``).
"""
