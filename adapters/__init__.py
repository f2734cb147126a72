"""The outside systems both the API and the worker talk to: the Docker daemon and the broker.

Nothing here decides anything about builds; `core` never imports `adapters`."""
