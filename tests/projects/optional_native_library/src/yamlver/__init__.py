try:
    from yamlver._libyaml import backend
except ImportError:

    def backend() -> str:
        """The backend in use (the pure-Python fallback)."""
        return "python"
