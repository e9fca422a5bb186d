"""The data lake: where every table and model lives (``layout``) and how files are written (``files``)."""
