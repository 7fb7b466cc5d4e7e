"""Built-in plugin: the diffusers img2img runner (torch and diffusers load on first use)."""

from photobatch.plugins import hookimpl
from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner


@hookimpl
def photobatch_runners():
    """The img2img runner."""
    return [DiffusersImg2ImgRunner()]
