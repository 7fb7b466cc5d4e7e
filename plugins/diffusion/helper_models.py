"""Helper models from transformers beside the diffusion model (a depth estimator, a captioner):
a model with its processor, loaded from a folder or a hub id through ``load_component``."""

from __future__ import annotations

from dataclasses import dataclass

from photobatch.plugins.diffusion.loading import ModelError, load_component


@dataclass
class HelperModel:
    """A transformers model and its processor, on one device (computing in fp32)."""

    model: object
    processor: object
    device: str = "cpu"

    def to(self, device: str) -> "HelperModel":
        """Move the model to ``device`` (what ``load_component`` does with every part)."""
        self.model = self.model.to(device)
        self.device = device
        return self


def load_helper_model(label: str, source: str, device: str, auto_class: str) -> HelperModel:
    """Load ``source`` (a folder or a hub id; offline, the HF cache) with transformers'
    ``auto_class`` (e.g. "AutoModelForDepthEstimation") and its AutoProcessor; errors name
    ``label``."""
    import transformers

    model_class = getattr(transformers, auto_class)

    def load(name, **kwargs):
        return HelperModel(model_class.from_pretrained(name, **kwargs).eval(),
                           transformers.AutoProcessor.from_pretrained(name, **kwargs))

    def from_file(path):
        # A bare weights file has neither the architecture nor the processor's settings.
        raise ModelError(f"{label} {path.name}: give the model's folder (config.json, the "
                         "processor's files and weights) or a hub id, not a single file")

    return load_component(label, source, device, from_file=from_file,
                          from_folder=lambda path: load(str(path)),
                          from_hub=lambda name, cache_only: load(name, local_files_only=cache_only))
