"""
Keep the official demo's API types where Gradio 6 changed them.

Gradio 5.17 (the official demo's pin) typed a ``gr.Video`` input as ``dict(video: filepath,
subtitles: filepath | None)``; Gradio 6 types it as a bare ``filepath``. A client script
written for the official demo sends ``{'video': handle_file(path)}``, while the Gradio 6 front
end sends the bare file. ``official_video`` makes a stock ``gr.Video`` that accepts both and
advertises the official type.

The instance is adjusted rather than subclassed: Gradio writes a ``.pyi`` stub next to the
module of every component subclass when the class is created.
"""

from __future__ import annotations

import types
from typing import Any, Union

import gradio as gr
from gradio.data_classes import FileData, GradioModel, GradioRootModel

__all__ = ['official_video']


class _LegacyVideoData(GradioModel):
    """Gradio 5's video payload: the file plus optional subtitles."""

    video: FileData
    subtitles: FileData | None = None


class _VideoPayload(GradioRootModel):
    """Either payload: Gradio 5's ``{video, subtitles}`` or Gradio 6's bare file."""

    root: Union[_LegacyVideoData, FileData]  # noqa: UP007 (pydantic needs the Union form)


def _api_info(self: gr.Video) -> dict[str, Any]:
    schema = _LegacyVideoData.model_json_schema()
    schema['additional_description'] = schema.pop('description', None)
    return schema


def _preprocess(self: gr.Video, payload: Any) -> str | None:
    if payload is None:
        return None
    inner = payload.root if isinstance(payload, GradioRootModel) else payload
    if isinstance(inner, _LegacyVideoData):
        inner = inner.video
    path: str | None = gr.Video.preprocess(self, inner)
    return path


def official_video(**kwargs: Any) -> gr.Video:
    """
    Make a ``gr.Video`` input that also takes the Gradio 5 ``{'video': file}`` payload.

    :param kwargs: passed to ``gr.Video``.
    :return: the component.
    """
    video = gr.Video(**kwargs)
    video.data_model = _VideoPayload  # type: ignore[assignment]
    video.api_info = types.MethodType(_api_info, video)  # type: ignore[method-assign]
    video.preprocess = types.MethodType(_preprocess, video)
    return video
