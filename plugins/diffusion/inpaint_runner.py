"""The inpaint runner: regenerate only inside a mask; outside it the source stays bit for bit.

With ``only_masked`` (A1111 "inpaint at full resolution") the mask's bounding box plus
``mask_padding`` is cut from the full-size photo and processed at the model's working size,
so a small face gets the model's full resolution; otherwise the whole photo is. The feathered
mask (``mask_blur``) is applied in our own paste-back, because pipelines binarise masks.
"""

from __future__ import annotations

from PIL import Image

from photobatch.plugins.diffusion.engine import RunOutput, generate
from photobatch.plugins.diffusion.masks import crop_region, feather, model_mask
from photobatch.plugins.diffusion.params import to_working_size
from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner, filled_prompt, rgb
from photobatch.plugins.diffusion.settings import settings_from_recipe
from photobatch.plugins.diffusion.sources import adapters_hash


class DiffusersInpaintRunner(DiffusersImg2ImgRunner):
    """Masked img2img through diffusers' inpainting pipelines (4- or 9-channel UNets, SD 3.x and
    FLUX.1 transformers)."""

    name = "inpaint"

    def run(self, image: Image.Image, recipe, seed: int, model: str, mask: Image.Image | None = None) -> RunOutput:
        """Inpaint ``image`` inside ``mask`` (L, white = edit; any size, scaled to the image's)."""
        if mask is None:
            raise ValueError("the inpaint runner needs a mask (white where the photo may change)")
        settings = settings_from_recipe(recipe)
        if settings.full_resolution == "tiled":
            raise ValueError("full_resolution 'tiled' is for global recipes; inpainting uses "
                             "'detail-transfer' or 'resize'")
        loaded, settings = self.loaded_for(model, settings)
        image = rgb(image)
        mask = mask.convert("L")
        if mask.size != image.size:
            mask = mask.resize(image.size, Image.Resampling.BILINEAR)
        feathered = feather(mask, settings.mask_blur)
        if settings.only_masked:
            region = crop_region(feathered, settings.mask_padding)
        else:
            if feathered.getbbox() is None:
                raise ValueError("the mask is empty: nothing to inpaint")
            region = (0, 0, image.width, image.height)
        crop = image.crop(region)
        settings = self.captioned(settings, crop, loaded)
        size = self.size_for(crop, loaded, settings)
        model_input = to_working_size(crop, size)
        small_mask = model_mask(model_mask(feathered.crop(region)).resize(size, Image.Resampling.BILINEAR))
        out = generate(self.cache, loaded, settings, [model_input], [seed], masks=[small_mask],
                       controls=[model_input])[0]
        return RunOutput(out, loaded.ref.model_id, loaded.hash, loaded.device, size, model_input,
                         region=region, mask=feathered, precision=loaded.precision,
                         adapters_hash=adapters_hash(settings), prompt=filled_prompt(settings),
                         family=loaded.info.table, model_config=loaded.base)
