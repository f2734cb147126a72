from django.test import SimpleTestCase


class IndexTests(SimpleTestCase):
    def test_index_lists_no_polls(self):
        response = self.client.get("/")
        self.assertEqual(response.json(), {"polls": []})

    def test_unknown_page_is_404(self):
        self.assertEqual(self.client.get("/nope").status_code, 404)
