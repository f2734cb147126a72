from yamlver import backend


def test_backend_is_named():
    assert backend() == "python" or backend().startswith("libyaml 0.")
