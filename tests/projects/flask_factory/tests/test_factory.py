from flaskr import create_app


def test_default_greeting():
    client = create_app().test_client()
    assert client.get("/").get_json() == {"greeting": "hello"}


def test_configured_greeting():
    client = create_app({"GREETING": "hi"}).test_client()
    assert client.get("/").get_json() == {"greeting": "hi"}
