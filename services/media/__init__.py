"""Files: the content-addressed output `storage`, `png` (PNG writing with A1111 `parameters` + JSON metadata chunks,
and reading them back) and `mp4` (H.264 encoding and probing)."""
