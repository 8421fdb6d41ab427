"""Faces: the face `engine` (dlib's CC0 models by default: detection, 128-d descriptors, likeness scores; insightface
FaceAnalysis with ArcFace from a local pack folder where PLAYGROUND_FACE_PACK is set, which the FaceID adapters need),
identity `scores`, and the identity `monitor` (SimRef of every figure output from each recogniser installed, with the
copy-paste flag calibrated in presets/identity.toml). The tiny offline face pack used by the preview and the tests is
built by `pipelines.tiny.faces`."""
