from django.apps import apps
from django.test import SimpleTestCase


class HelloTests(SimpleTestCase):
    def test_hello(self):
        response = self.client.get("/hello/ada/")
        self.assertEqual(response.content, b"hello, ada")

    def test_app_is_installed(self):
        self.assertTrue(apps.is_installed("greetings"))
