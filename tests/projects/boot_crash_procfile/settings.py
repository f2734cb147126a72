import os


def load():
    path = os.environ.get("APP_SETTINGS", "settings.ini")
    if not os.path.exists(path):
        return f"error: the settings file {path} is missing"
    return 0
