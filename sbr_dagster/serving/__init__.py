"""Using a trained model: its bundle on disk, and the recommender that turns movie ids into top-k lists."""
