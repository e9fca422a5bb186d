"""Step 3 (and the model half of step 4): every model behind one interface (``base.SessionModel``).

``registry`` names them all; ``ranking`` holds the one rule that turns scores into ranks.
"""
