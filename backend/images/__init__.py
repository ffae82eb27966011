"""First- and last-frame images: fetched and checked once by genhook, kept in the database,
and handed to each provider in the form it wants (a signed, expiring link, or the bytes)."""
