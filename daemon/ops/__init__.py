"""What every replica runs: the config in force and its reload, status views, the ops server."""
