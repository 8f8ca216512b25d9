"""The ``.. backends::`` directive: which backends a tutorial page's examples run on.

::

    .. backends:: fork pool process subprocess

       thread, inline, asyncio: they run tasks in the caller's process

The argument lists the backends; each content line names backends left out and
says why. The page shows both; ``tests/test_docs_on_every_backend.py`` reads the
same lines, repeats the page's examples under each backend listed, and checks
that every backend of the registry is either listed or left out with a reason.
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive


class Backends(Directive):
    required_arguments = 1
    final_argument_whitespace = True
    has_content = True

    def run(self) -> list[nodes.Node]:
        runs = self.arguments[0].split()
        note = nodes.note()
        para = nodes.paragraph()
        para += nodes.strong(text="Runs on: ")
        for i, name in enumerate(runs):
            if i:
                para += nodes.Text(", ")
            para += nodes.literal(text=name)
        para += nodes.Text(
            ". The test suite repeats every example of this page with "
            "EXECUTORS_BACKEND set to each of them."
        )
        note += para
        if self.content:
            items = nodes.bullet_list()
            for line in self.content:
                names, _, why = line.partition(":")
                item = nodes.list_item()
                text = nodes.paragraph()
                text += nodes.strong(text="Left out: ")
                text += nodes.literal(text=names.strip())
                text += nodes.Text(f": {why.strip()}")
                item += text
                items += item
            note += items
        return [note]


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("backends", Backends)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
