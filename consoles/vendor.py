"""The browser code the consoles vendor: files taken from pinned npm packages, checked
twice. `python -m consoles.vendor` fetches each package with the npm client (`npm pack`),
refuses a tarball whose SHA-512 is not the registry's pinned `integrity`, and writes the one
file the consoles serve; tests/consoles/test_vendor.py holds each written file to its pinned
SHA-256, so a file edited by hand, or a different build, fails the suite.

To upgrade: change the version and `integrity` (`npm view htmx.org@X dist.integrity`), run
the module, and pin the SHA-256 it prints.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

VENDOR_DIR = Path(__file__).resolve().parent / "static" / "vendor"


@dataclass(frozen=True)
class Vendored:
    package: str
    version: str
    # The registry's `dist.integrity` of the package's tarball.
    integrity: str
    # The file inside the tarball (under `package/`), and its name here.
    member: str
    name: str
    sha256: str


VENDORED: tuple[Vendored, ...] = (
    Vendored(
        "htmx.org",
        "2.0.11",
        "sha512-Thx/WtpeOQqSrqBCw/A1cwGJGg4UrVa3+sW0GmrM3p4gJgO89ecH4qtbnyzDDWFvBTqjnIMCgELTNt636dtamA==",
        "package/dist/htmx.min.js",
        "htmx.min.js",
        "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717",
    ),
    Vendored(
        "jsqr",
        "1.4.0",
        "sha512-dxLob7q65Xg2DvstYkRpkYtmKm2sPJ9oFhrhmudT1dZvNFFTlroai3AWSpLey/w5vMcLBXRgOJsbXpdN9HzU/A"
        "==",
        "package/dist/jsQR.js",
        "jsQR.js",
        "bc40c8a15196236b2314db0856f72ca0b49980cd5413b8c852a7349f5fee0859",
    ),
)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch(item: Vendored, workdir: Path) -> str:
    """Fetch, check and write one file; returns its SHA-256."""
    subprocess.run(
        ["npm", "pack", "--silent", f"{item.package}@{item.version}"],
        cwd=workdir,
        check=True,
        capture_output=True,
    )
    [tarball] = workdir.glob("*.tgz")
    algorithm, _, expected = item.integrity.partition("-")
    digest = base64.b64encode(hashlib.new(algorithm, tarball.read_bytes()).digest()).decode()
    if digest != expected:
        raise SystemExit(f"{item.package}@{item.version}: integrity {digest} is not the pinned one")
    with tarfile.open(tarball) as archive:
        member = archive.extractfile(item.member)
        assert member is not None, item.member
        (VENDOR_DIR / item.name).write_bytes(member.read())
    tarball.unlink()
    return sha256_of(VENDOR_DIR / item.name)


def main() -> int:
    for item in VENDORED:
        with tempfile.TemporaryDirectory() as workdir:
            written = fetch(item, Path(workdir))
        state = "ok" if written == item.sha256 else "NEW: pin it"
        print(f"{item.name}: {item.package}@{item.version} sha256 {written} ({state})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
