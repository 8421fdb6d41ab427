"""Refusals of the pipeline layer: the request cannot run as asked, and the message says what to change.

Every one derives from `RequestRefused`, so the layer above translates one class, never a list.
"""
from __future__ import annotations


class RequestRefused(ValueError):
    """A request this layer cannot run as asked (model, task, size, weights, options); the message says why."""


class UnknownModel(RequestRefused, KeyError):
    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0])


class UnsupportedTask(RequestRefused):
    pass


class InvalidSize(RequestRefused):
    pass


class UnsupportedOption(RequestRefused):
    """A family was given a request field it cannot use for that task (a face on FLUX, a reference on text-to-image)."""


class WeightsUnavailable(RequestRefused):
    """Real weights are absent and the preview is forbidden."""


class RemoteBackendUnavailable(RequestRefused):
    """An API-only model was asked to run; its provider backend is not wired in."""


class AcceleratorBusy(RequestRefused):
    """The GPU platform (ZeroGPU) refused or stopped the run: quota used up, duration not allowed, task aborted."""


class ServeUnavailable(RequestRefused):
    """PLAYGROUND_BACKEND=ray: the model's Ray Serve application cannot be reached (not deployed, cluster down)."""


class ReplicaLost(AcceleratorBusy):
    """PLAYGROUND_BACKEND=ray: the replica running the request died before it finished (a node lost, the actor killed)."""
