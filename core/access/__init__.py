"""Who may do what: callers, API tokens, owners' image namespaces, their package indexes and the
encryption of the secrets the service keeps."""
