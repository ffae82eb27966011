"""Webhook mechanics: where genhook may send (url_guard), how it signs, how it sends."""
