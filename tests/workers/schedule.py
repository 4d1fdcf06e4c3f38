"""A test-only schedule (EXTRA_SCHEDULE_MODULES): a job every two seconds."""

from app.domains import PeriodicJob

SCHEDULE = (PeriodicJob("tests.tick", {"second": "*/2"}),)
