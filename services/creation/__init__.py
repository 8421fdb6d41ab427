"""The creation features, each a surface that describes its paid runs and hands them to `services.runs.Runner`:
`text` (Text mode), `figures` (+ `figure_presets`: Quick and Custom creation, takes, the canonical reference),
`remix` (Figure Remix, Edit, Group), `video` (Figure to Video, Image to Video), `compare`, `characters` (profiles,
galleries, Character Card export) and `image_presets` (tag chips, Outfit/Action/Scene presets)."""
