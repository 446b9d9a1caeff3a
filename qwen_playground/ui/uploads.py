"""Upload components that only ever hand the app files a client uploaded.

Gradio 6.31 checks paths of payloads marked as file data, but an API caller
can send a bare `{"path": "/somewhere/on/the/server"}`: the Image component
then opens that server file itself (found by fuzzing /vision). These
subclasses refuse any payload whose path is outside Gradio's upload folder
before the stock preprocessing runs, for every component that takes files.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr
from gradio import utils

from .common import refuse

REFUSED = "Only files uploaded through the app can be used. Upload the file, or send it with gradio_client.handle_file()."


def _paths(payload) -> list:
    if payload is None:
        return []
    items = getattr(payload, "root", payload)  # ListFiles wraps a list
    return [getattr(item, "path", None) for item in (items if isinstance(items, list) else [items])]


def require_uploaded(paths: list[str]) -> None:
    """Refuse any path outside Gradio's upload folder: file parts in a chat history an API caller sends are paths too."""
    if any(not utils.is_in_or_equal(path, utils.get_upload_folder()) for path in paths):
        raise refuse(REFUSED)


class _OnlyUploads:
    def preprocess(self, payload):
        for path in _paths(payload):
            if not path or not utils.is_in_or_equal(path, utils.get_upload_folder()):
                raise refuse(REFUSED)
        try:
            return super().preprocess(payload)
        except gr.Error:
            raise
        except Exception as e:  # e.g. a text file sent as an image: say so, without internals
            raise refuse(f"Could not read the uploaded file ({type(e).__name__}). Upload a file of the kind this box takes.") from None


class Image(_OnlyUploads, gr.Image):
    pass


class Audio(_OnlyUploads, gr.Audio):
    pass


class File(_OnlyUploads, gr.File):
    pass


class UploadButton(_OnlyUploads, gr.UploadButton):
    pass


def deleted_with_session(component: gr.components.Component) -> None:
    """Files a session recorded or uploaded into `component` are deleted from the server when the session ends
    (Gradio deletes a session's state an hour after its page closes), not kept until the app restarts."""
    kept = gr.State([], delete_callback=lambda paths: [Path(p).unlink(missing_ok=True) for p in paths or []])
    component.change(lambda value, paths: [*paths, *(value if isinstance(value, list) else [value])] if value else gr.skip(),
                     [component, kept], kept, api_visibility="private", queue=False)  # one file, or a list of them
