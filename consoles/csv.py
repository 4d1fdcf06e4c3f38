"""CSV answers of the consoles: text a spreadsheet will not run as a formula."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from flask import Response

from partners.scorecards import inert


def csv_response(rows: Sequence[dict[str, Any]], filename: str) -> Response:
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: inert(v) if isinstance(v, str) else v for k, v in row.items()})
    response = Response(out.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
    return response
