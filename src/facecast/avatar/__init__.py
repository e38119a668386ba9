"""Avatars: a portrait photo or short video, its face mesh per frame, masks, and the on-disk cache."""
