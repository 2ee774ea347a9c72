"""Video files in and out: writing playable videos atomically (video, paths) and reading input frames (frames)."""
