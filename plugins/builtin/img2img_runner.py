"""Built-in plugin: the diffusers runners, img2img and inpaint (torch and diffusers load on first use)."""

from photobatch.plugins import hookimpl
from photobatch.plugins.diffusion.cache import PipelineCache
from photobatch.plugins.diffusion.inpaint_runner import DiffusersInpaintRunner
from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner


@hookimpl
def photobatch_runners():
    """The img2img and inpaint runners, sharing one pipeline cache (one copy of each model)."""
    cache = PipelineCache()
    return [DiffusersImg2ImgRunner(cache=cache), DiffusersInpaintRunner(cache=cache)]
