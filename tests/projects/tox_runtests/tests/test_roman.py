import doctest
import unittest

import roman


def load_tests(loader, tests, ignore):
    tests.addTests(doctest.DocTestSuite(roman))
    return tests


class ToRoman(unittest.TestCase):
    def test_small(self):
        self.assertEqual(roman.to_roman(4), "IV")

    def test_large(self):
        self.assertEqual(roman.to_roman(3999), "MMMCMXCIX")
