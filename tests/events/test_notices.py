"""What events tell owners: reminders."""

from __future__ import annotations

import threading
from datetime import timedelta

from app.clock import utcnow
from events import notices
from notifications.models import Notification
from tests.events.conftest import many_owners, register_all


def test_reminders_are_sent_once_per_window(make_event):
    tomorrow = make_event(starts_in=timedelta(hours=20))
    soon = make_event(starts_in=timedelta(hours=1))
    later = make_event(starts_in=timedelta(days=3))
    owner = many_owners(1)[0]
    register_all(tomorrow, [owner])
    register_all(soon, [owner])
    register_all(later, [owner])
    assert notices.send_reminders() == 2
    assert notices.send_reminders() == 0
    templates = sorted(n.template for n in Notification.objects(user_id=owner.user.pk))
    assert templates == ["event_reminder_24h", "event_reminder_2h"]
    # 22 hours on, the first event is two hours away: its second reminder goes out.
    assert notices.send_reminders(utcnow() + timedelta(hours=18, minutes=30)) == 1
    assert Notification.objects(template="event_reminder_2h").count() == 2


def test_concurrent_reminder_runs_send_each_reminder_once(make_event):
    event = make_event(starts_in=timedelta(hours=5), capacity=40)
    people = many_owners(40)
    register_all(event, people)
    sent = []
    barrier = threading.Barrier(4)

    def run():
        barrier.wait()
        sent.append(notices.send_reminders())

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(sent) == 40
    assert Notification.objects(template="event_reminder_24h").count() == 40
