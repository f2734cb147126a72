SECRET_KEY = "tests-only"
INSTALLED_APPS = ["django.contrib.contenttypes", "greetings"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
ROOT_URLCONF = "tests.urls"
USE_TZ = True
