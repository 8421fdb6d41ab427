"""Faces: the face `engine` (insightface FaceAnalysis from a local pack folder: detection, embedding, similarity).
The tiny offline face pack used by the preview and the tests is built by `pipelines.tiny.faces`."""
