"""The door reads a ticket's QR code from the phone's camera: Chromium's fake camera plays a
video of the QR code an owner's app would show (drawn from a real ticket), jsQR decodes it
in the page, and the owner is checked in."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import qrcode

from app.auth import load_caller
from events import registration, tickets
from events.models import Registration
from tests.consoles.browser import PHONE, launch, new_page, sign_in_page
from tests.support import make_person, wait_until

WIDTH, HEIGHT, SCALE = 640, 480, 5


def qr_video(text: str, path: Path) -> Path:
    """A Y4M video (what Chromium's fake camera plays) of `text` as a QR code on white."""
    code = qrcode.QRCode(border=4, error_correction=qrcode.constants.ERROR_CORRECT_M)
    code.add_data(text)
    code.make(fit=True)
    matrix = code.get_matrix()
    size = len(matrix) * SCALE
    assert size <= HEIGHT, size
    top, left = (HEIGHT - size) // 2, (WIDTH - size) // 2
    luma = bytearray(b"\xff" * (WIDTH * HEIGHT))
    for row, cells in enumerate(matrix):
        for column, dark in enumerate(cells):
            if dark:
                for dy in range(SCALE):
                    start = (top + row * SCALE + dy) * WIDTH + left + column * SCALE
                    luma[start : start + SCALE] = b"\x00" * SCALE
    chroma = b"\x80" * (WIDTH // 2 * HEIGHT // 2)
    frame = b"FRAME\n" + bytes(luma) + chroma + chroma
    path.write_bytes(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F10:1 Ip A1:1 C420jpeg\n".encode() + frame * 2)
    return path


def test_a_ticket_shown_to_the_camera_checks_the_owner_in(
    playwright_driver, console_url, screenshot, leader, make_event, tmp_path
):
    event = make_event(starts_in=timedelta(hours=1))
    owner = make_person("SZ", display_name="Chen Jing")
    registration.register(load_caller(owner.id), str(event.pk))
    token = tickets.issue_ticket(load_caller(owner.id), str(event.pk))["token"]
    video = qr_video(token, tmp_path / "ticket.y4m")
    camera = launch(
        playwright_driver,
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
    )
    try:
        page = new_page(camera, "en", PHONE, permissions=["camera"])
        sign_in_page(page, console_url, leader.user.email)
        page.goto(f"{console_url}/console/events/{event.pk}/door")
        wait_until(
            lambda: page.evaluate(f"localStorage.getItem('door:kit:{event.pk}') !== null"),
            message="the door kit",
        )
        page.click("#door-camera")
        wait_until(
            lambda: "Chen Jing" in page.inner_text("#door-answer"),
            message="the camera's ticket read",
        )
        assert "green" in page.get_attribute("#door-answer", "class")
        screenshot(page, "door-camera")
        assert Registration.objects.get(user_id=owner.user.pk).status == "attended"
    finally:
        camera.close()
