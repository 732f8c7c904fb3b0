"""Test only: PDFium stuck inside a native call on one page, for tests/test_stuck_page.py.

No real file is known to hang PDFium (its hangs get fixed), so the test makes one: this folder goes on the
PYTHONPATH of the daemon it starts, with DIGIT_WATCHER_HANG_POINTS set, and Python imports this module at the
start of every process, the daemon's workers included. Drawing a page that many points wide and high then calls
`hang_in_c` (hang.py, beside this file): a C call that never returns, whatever signal comes (the worker's own
SIGALRM included), as PDFium looping in its own code would. The daemon's code is unchanged.
"""

from __future__ import annotations

import os
from typing import Any

HANG_POINTS = os.environ.get("DIGIT_WATCHER_HANG_POINTS")

if HANG_POINTS:
    import pypdfium2
    from hang import hang_in_c

    drawn = pypdfium2.PdfPage.render

    def render_or_hang(page: Any, *args: Any, **kwargs: Any) -> Any:
        if page.get_size() == (float(HANG_POINTS), float(HANG_POINTS)):
            hang_in_c()
        return drawn(page, *args, **kwargs)

    pypdfium2.PdfPage.render = render_or_hang
