"""Training configurations: ``default.py`` (every field) and per-family paper recipes."""
