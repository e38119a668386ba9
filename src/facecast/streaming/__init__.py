"""Streaming generation: sessions that render speech in small batches into fragmented MP4 as it is
produced, for clip input (a file or text) and for live PCM pushed by a voice agent."""
