"""Media I/O in-process with PyAV: decode images/videos, encode MP4 and fragmented MP4."""
