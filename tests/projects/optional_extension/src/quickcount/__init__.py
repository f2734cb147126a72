try:
    from quickcount._speedups import count_words
except ImportError:

    def count_words(text: str) -> int:
        """The number of words in `text` (the pure-Python fallback)."""
        return len(text.split())
