"""Rate limits and quotas, counted in Redis so every API process and worker shares them.

``policy`` reads a limit from the settings, ``limiter`` counts hits against it (the
``limits`` library's sliding-window counter over genhook's Redis, failing open when Redis is
away), ``headers`` turns a count into the IETF ``RateLimit`` fields, and ``quotas`` holds
the checks the domain makes: per-account request rates, webhook deliveries, redeliver and
recover calls, and signups per client address and email domain.
"""
