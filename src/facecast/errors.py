"""The small set of errors users see. Each message names the offending input."""

from __future__ import annotations


class FacecastError(Exception):
    """Base class of every error facecast reports to a user."""

    #: HTTP status the server answers with for this error.
    http_status = 400


class UnsupportedMedia(FacecastError):
    """A file is not an image, video or audio facecast can decode."""

    http_status = 415


class CorruptMedia(FacecastError):
    """A file claims a known format but cannot be decoded."""


class EmptyAudio(FacecastError):
    """Audio decoded to zero samples (or is too short to drive a single frame)."""


class NoFaceFound(FacecastError):
    """No face was detected in an avatar source."""

    http_status = 422


class NotFound(FacecastError):
    """An id (avatar, session) that does not exist."""

    http_status = 404


class TooLarge(FacecastError):
    """An upload exceeds the configured size limit."""

    http_status = 413


class InvalidArgument(FacecastError, ValueError):
    """A parameter value is out of range; the message names it and echoes the value."""


class ModelFilesMissing(FacecastError):
    """A model directory lacks files a backend needs; the message lists them."""


class MissingDependency(FacecastError):
    """A package facecast needs for this step is not installed; the message says how to install it."""


class Conflict(FacecastError):
    """The request is valid but clashes with the current state (e.g. deleting the default avatar)."""

    http_status = 409


class Unavailable(FacecastError):
    """The server is at a limit (sessions); trying again later may work."""

    http_status = 503


class StreamGone(FacecastError):
    """A session ended before it produced its first frame."""

    http_status = 410


class GenerationFailed(FacecastError):
    """Rendering or encoding failed inside the server (the detail says how); the server keeps running."""

    http_status = 500
