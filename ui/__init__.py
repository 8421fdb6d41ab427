"""The Gradio UI: one module per tab; imports gradio and services only."""
