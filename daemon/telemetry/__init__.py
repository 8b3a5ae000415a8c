"""Every metric, declared once on an injected registry, and the log formats."""
