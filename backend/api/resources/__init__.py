"""One module per group of endpoints; each resource parses, calls one domain function,
and shapes the answer."""
