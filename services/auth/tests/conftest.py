"""Auth under test: its settings and app; the rest comes from ticketing_testing's plugin."""

from ticketing_auth.main import create_app
from ticketing_auth.settings import Settings
from ticketing_testing.apps import app_fixture, settings_fixture

# Rate limits counted in the process (the tests of Redis itself start a redis-server).
settings = settings_fixture(Settings, redis_url="memory://")
app = app_fixture(create_app)
