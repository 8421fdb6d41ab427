"""Faces: the face `engine` (dlib's CC0 models by default: detection, 128-d descriptors, likeness scores; insightface
FaceAnalysis with ArcFace from a local pack folder where PLAYGROUND_FACE_PACK is set, which the FaceID adapters need)
and identity `scores`. The tiny offline face pack used by the preview and the tests is built by `pipelines.tiny.faces`."""
