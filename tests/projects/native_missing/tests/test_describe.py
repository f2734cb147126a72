import unittest

from mpver import describe


class DescribeTest(unittest.TestCase):
    def test_describe(self):
        self.assertEqual(describe("4.2"), "mpfr 4.2")
