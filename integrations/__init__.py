"""The no-code integrations; only ``codegen`` is Python (a dev tool run from the repo root)."""
