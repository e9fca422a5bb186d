"""The sweep: experiments declared in ``experiments.yaml`` and the leaderboard that compares them."""
