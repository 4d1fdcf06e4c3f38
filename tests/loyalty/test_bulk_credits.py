"""Bulk credits from a CSV upload: the preview, applying on a worker, the report, and
idempotency per line (the same file again applies nothing)."""

from __future__ import annotations

import io

import pytest
from bson import ObjectId

from accounts.models import User
from app.auth import load_caller
from app.outbox import OutboxEvent
from loyalty import bulk_credits
from loyalty.errors import BulkCreditStarted, InvalidCsv
from loyalty.models import LINE_STATUSES, BulkCreditLine, LedgerEntry, PointsAccount
from notifications.models import Notification
from tests.events.conftest import many_owners
from tests.support import make_person, wait_until


@pytest.fixture
def admin(app):
    return load_caller(make_person("SZ", role="admin").id)


def csv_of(lines: list[str], header: str = "account,points,reason") -> io.BytesIO:
    return io.BytesIO(("\n".join([header, *lines]) + "\n").encode())


def owners_file(count: int) -> tuple[list, list[str]]:
    owners = many_owners(count)
    lines = []
    for n, owner in enumerate(owners):
        # Owners named by id, email or phone, as a campaign's export would.
        account = owner.id if n % 2 else owner.user.email
        lines.append(f"{account},100,Spring campaign")
    return owners, lines


def counted(**counts: int) -> dict[str, int]:
    return {status: counts.get(status, 0) for status in LINE_STATUSES}


def balance(person) -> int:
    account = PointsAccount.objects(pk=person.user.pk).first()
    return account.balance if account else 0


@pytest.mark.slow
def test_five_hundred_owners_with_three_bad_lines(admin):
    owners, lines = owners_file(500)
    lines[10] = "nobody@example.com,100,Spring campaign"
    lines[20] = f"{owners[20].id},ten,Spring campaign"
    lines[30] = f"{owners[30].id},100,"
    job = bulk_credits.preview(admin, csv_of(lines), "spring.csv")
    assert job.counts == counted(ready=497, invalid=3) and job.points == 49_700
    errors = {
        line.line: line.error for line in BulkCreditLine.objects(job_id=job.pk, status="invalid")
    }
    # Line numbers as a spreadsheet shows them: the header is line 1.
    assert errors == {12: "unknown_account", 22: "invalid_points", 32: "missing_reason"}

    bulk_credits.start(admin, str(job.pk))
    with pytest.raises(BulkCreditStarted):
        bulk_credits.start(admin, str(job.pk))
    assert OutboxEvent.objects.get(type="bulk_credit.requested").subject_id == str(job.pk)
    done = bulk_credits.apply(str(job.pk))
    assert done.status == "done" and done.counts == counted(invalid=3, applied=497)
    assert balance(owners[0]) == 100 and balance(owners[10]) == 0
    assert LedgerEntry.objects(__raw__={"source.type": "bulk_credit"}).count() == 497
    assert Notification.objects(template="points_adjusted").count() == 497
    report = list(bulk_credits.not_applied(admin, str(job.pk)))
    # Each line as written (points that were a number kept), to mend and upload again.
    assert [(row["line"], row["points"], row["error"]) for row in report] == [
        (12, 100, "unknown_account"),
        (22, "", "invalid_points"),
        (32, 100, "missing_reason"),
    ]

    # The same file again: every good line is already applied, and nothing moves.
    again = bulk_credits.preview(admin, csv_of(lines), "spring.csv")
    assert again.counts == counted(already_applied=497, invalid=3) and again.points == 0
    bulk_credits.start(admin, str(again.pk))
    assert bulk_credits.apply(str(again.pk)).counts["applied"] == 0
    assert LedgerEntry.objects(__raw__={"source.type": "bulk_credit"}).count() == 497

    # The file corrected: only the mended line applies.
    lines[20] = f"{owners[20].id},100,Spring campaign"
    fixed = bulk_credits.preview(admin, csv_of(lines), "spring-fixed.csv")
    assert fixed.counts == counted(already_applied=497, ready=1, invalid=2)
    bulk_credits.start(admin, str(fixed.pk))
    bulk_credits.apply(str(fixed.pk))
    assert balance(owners[20]) == 100


def test_identical_lines_and_references(admin):
    [owner] = many_owners(1)
    lines = [f"{owner.id},50,Goodwill", f"{owner.id},50,Goodwill"]
    job = bulk_credits.preview(admin, csv_of(lines))
    assert job.counts == counted(ready=2)  # two lines, two credits
    bulk_credits.start(admin, str(job.pk))
    bulk_credits.apply(str(job.pk))
    assert balance(owner) == 100
    # With a reference, the admin's own id decides what is one credit.
    refs = csv_of(
        [f"{owner.id},10,Outage,T-1", f"{owner.id},10,Outage,T-1", f"{owner.id},10,Outage,T-2"],
        header="account,points,reason,reference",
    )
    job = bulk_credits.preview(admin, refs)
    lines = {line.line: line for line in BulkCreditLine.objects(job_id=job.pk)}
    assert lines[3].error == "duplicate_reference"
    bulk_credits.start(admin, str(job.pk))
    bulk_credits.apply(str(job.pk))
    assert balance(owner) == 120


def test_nobody_credits_themselves_and_debits_need_points(admin):
    [owner] = many_owners(1)
    job = bulk_credits.preview(
        admin, csv_of([f"{admin.id},500,Me", f"{owner.id},-30,Correction"]), ""
    )
    lines = {line.line: line for line in BulkCreditLine.objects(job_id=job.pk)}
    assert lines[2].error == "own_points" and lines[3].status == "ready"
    bulk_credits.start(admin, str(job.pk))
    bulk_credits.apply(str(job.pk))
    refused = BulkCreditLine.objects.get(job_id=job.pk, line=3)
    assert (refused.status, refused.error) == ("refused", "insufficient_points")
    assert balance(owner) == 0


@pytest.mark.parametrize(
    "content",
    [
        b"who,points,reason\nx,1,y\n",
        b"account,reason\nx,y\n",
        b"account,points,reason\n",
        b"account,points,reason\n\xff\xfe,1,y\n",
        b"\x00\x01\x02",
        # Refused on its last line: the lines read before it are not kept either.
        b"account,points,reason\n" + b"x,1,y\n" * 2500 + b"\xff,1,y\n",
    ],
)
def test_a_file_that_is_not_the_csv_it_should_be_is_refused(admin, content):
    with pytest.raises(InvalidCsv):
        bulk_credits.preview(admin, io.BytesIO(content), "bad.csv")
    assert BulkCreditLine.objects.count() == 0


def test_a_default_reason_other_columns_and_phones(admin):
    phone_owner = make_person("SZ", phone="+86 139 0000 2222")
    User.objects(pk=phone_owner.user.pk).update_one(set__created_at=phone_owner.user.created_at)
    content = csv_of(["+86 139 0000 2222,7", f"{ObjectId()},7", ",7"], header="Phone, Points ,note")
    job = bulk_credits.preview(admin, content, "", default_reason="Thanks for waiting")
    lines = {line.line: line for line in BulkCreditLine.objects(job_id=job.pk)}
    assert lines[2].status == "ready" and lines[2].reason == "Thanks for waiting"
    assert lines[3].error == "unknown_account" and lines[4].error == "missing_account"


@pytest.mark.slow
def test_applied_on_a_real_worker(admin, background):
    owners, lines = owners_file(30)
    background("worker", "dispatcher")
    job = bulk_credits.preview(admin, csv_of(lines))
    bulk_credits.start(admin, str(job.pk))
    wait_until(
        lambda: bulk_credits.job_for(admin, str(job.pk)).status == "done",
        message="the bulk credit applied",
    )
    assert all(balance(owner) == 100 for owner in owners)
