"""Webhooks: the signed message a build's end sends, and where it may be sent."""
