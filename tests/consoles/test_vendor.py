"""The browser code the consoles vendor is what the pinned npm packages hold (consoles/
vendor.py fetched it, checking each tarball's registry integrity), and nothing was edited."""

from __future__ import annotations

from consoles.vendor import VENDOR_DIR, VENDORED, sha256_of


def test_each_vendored_file_is_the_pinned_packages():
    assert sorted(path.name for path in VENDOR_DIR.iterdir()) == sorted(v.name for v in VENDORED)
    for item in VENDORED:
        assert sha256_of(VENDOR_DIR / item.name) == item.sha256, item.name
        assert item.integrity.startswith("sha512-")


def test_the_console_serves_them_and_its_service_worker(client):
    for item in VENDORED:
        served = client.get(f"/console/static/vendor/{item.name}")
        assert served.status_code == 200 and "javascript" in served.mimetype
        assert served.data == (VENDOR_DIR / item.name).read_bytes()
    worker = client.get("/console/sw.js")
    assert worker.status_code == 200 and "javascript" in worker.mimetype
    assert b"console-door-v1" in worker.data and worker.headers["Cache-Control"] == "no-store"
