"""Defaults shared by the video modules and their command-line options (no heavy imports here)."""

DEFAULT_WINDOW = 30  # frames: moving-average window of the camera path
DEFAULT_OVERLAP = 5  # frames cross-faded at each segment join
DEFAULT_MAX_SECONDS = 10.0  # s: longest segment
