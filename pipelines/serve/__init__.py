"""Ray Serve as an execution backend of the pipeline runtime (PLAYGROUND_BACKEND=ray).

backend.py is the app's side: PipelineRuntime.run hands a local entry's request to its deployment through a
handle, streams step progress back, cancels on Stop or the deadline, and turns the replica's bytes back into a
GenerationResult. deployment.py is the replica's side: the same family run functions through a PipelineRuntime
of its own. app.py builds the Serve applications from the registry; `python -m pipelines.serve` deploys them.
wire.py is what travels between the two. Only the replica side and app.py import ray at the top; the app imports
it on its first Ray request, so the local backend never does. Nothing here knows of credits: the app reserves,
captures and refunds around the one run call.
"""
