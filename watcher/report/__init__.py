"""The HTML report over a results CSV."""
