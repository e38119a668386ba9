"""Fragmented MP4 over HTTP: a session's batches are encoded on its worker thread (encoder.py),
kept for readers (fanout.py) by the Fmp4Output sink (output.py), and streamed (http.py)."""
