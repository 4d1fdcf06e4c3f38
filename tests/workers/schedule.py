"""A test-only schedule (EXTRA_SCHEDULE_MODULES): a job every two seconds."""

from workers.schedule import PeriodicJob

SCHEDULE = (PeriodicJob("tests.tick", {"second": "*/2"}),)
