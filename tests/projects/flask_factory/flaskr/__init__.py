from flask import Flask


def create_app(test_config=None):
    app = Flask(__name__)
    app.config.from_mapping(GREETING="hello")
    if test_config:
        app.config.update(test_config)

    @app.get("/")
    def index():
        return {"greeting": app.config["GREETING"]}

    return app
