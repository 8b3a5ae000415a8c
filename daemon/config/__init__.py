"""The config file's models, its reader and located errors, and the GRAPHNAP_* settings."""
