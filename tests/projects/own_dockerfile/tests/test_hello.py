import unittest

from hello import message


class MessageTest(unittest.TestCase):
    def test_message(self):
        self.assertIn("own Dockerfile", message())
