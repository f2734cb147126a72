import unittest

from oldlib import has_section


class HasSectionTest(unittest.TestCase):
    def test_present(self):
        self.assertTrue(has_section("[a]\n", "a"))

    def test_absent(self):
        self.assertFalse(has_section("[a]\n", "b"))

    @unittest.skip("documents a known limitation")
    def test_case_insensitive(self):
        self.assertTrue(has_section("[A]\n", "a"))
