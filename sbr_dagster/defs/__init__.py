"""The Dagster wiring, loaded by ``dg`` (``[tool.dg]`` in pyproject.toml): assets, checks, resources, jobs.

Only ``pipeline`` defines anything at module level (its ``@dg.definitions``); every other module
holds factories, since the assets depend on the session definitions chosen at load time.
"""
