"""The diffusers img2img runner: model loading, samplers, the stand-in model."""
