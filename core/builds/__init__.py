"""Builds as users see them: creating, listing and cancelling, the public resource, the status
poll, fair scheduling, logs, reuse of earlier results, what changed, rebuilds and retention."""
