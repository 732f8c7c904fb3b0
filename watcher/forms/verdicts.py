"""A form page read in one process, as the daemon reads it: its fields classified in one model call, then judged.

The daemon batches candidates across files itself (watcher.recognise); this serves the forms bench and the tests.
"""

from __future__ import annotations

from watcher.forms.fields import FormPage
from watcher.forms.template import Template
from watcher.model.classify import Classifier
from watcher.recognise import Prepared, Reading, form_page, read


def form_verdicts(
    form: FormPage, template: Template, classifier: Classifier, *, review_below: float | None
) -> dict[str, Reading]:
    """Each field's reading, its rules judged, by name, in template order."""
    prepared = Prepared(sha256="", pages=(form_page(1, form),))
    (readings,) = read([prepared], classifier, review_below=review_below, templates={template.name: template})
    return {reading.field: reading for reading in readings}
