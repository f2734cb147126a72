import unittest

from wordfmt import title


class TitleTest(unittest.TestCase):
    def test_words(self):
        self.assertEqual(title("hello world"), "Hello World")

    def test_empty(self):
        self.assertEqual(title(""), "")
