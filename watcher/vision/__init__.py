"""Vision: clean a page's pixels and find the digits on it."""
