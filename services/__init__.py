"""The domain layer: requests, validation, storage and metadata. Imports pipelines, never gradio."""
