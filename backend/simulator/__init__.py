"""A fake video render farm, served over real HTTP, so genhook can be exercised end to end."""
