"""User-facing errors.

Anything raised as a `VitrtError` is a problem with the user's input or environment: the CLI prints its message
on one line and exits non-zero, the server turns it into a 4xx JSON error. Anything else is a bug and keeps its
traceback.
"""


class VitrtError(Exception):
    """A user mistake or an unusable environment, explained in one line."""

    exit_code = 2


class ModelNotFoundError(VitrtError):
    """An unknown model name."""


class CheckpointError(VitrtError):
    """A checkpoint that cannot be read or does not fit the model."""


class ExportError(VitrtError):
    """An ONNX export that could not be produced or written."""


class ValidationError(VitrtError):
    """An artifact that does not match PyTorch within its budget."""

    exit_code = 3


class BackendUnavailableError(VitrtError):
    """A runtime backend (TensorRT, CUDA, ...) that is not installed or cannot run here."""


class ArtifactError(VitrtError):
    """An ONNX file, engine or manifest that cannot be used."""


class PluginError(VitrtError):
    """The vitrt plugin or kernel library cannot be found, built or loaded."""


class ModelConfigError(VitrtError):
    """A model configuration the architecture cannot build (e.g. an impossible input size)."""


class EngineBuildError(VitrtError):
    """A TensorRT engine build that cannot proceed: bad build options, a node TensorRT cannot import, a failed build."""


class ManifestMismatchError(ArtifactError):
    """An engine whose manifest does not match this machine (TensorRT version, GPU, plugin library)."""
