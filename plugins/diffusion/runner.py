"""The img2img runner: global img2img at the model's working size, tiled img2img, batches."""

from __future__ import annotations

from dataclasses import replace

from PIL import Image

from photobatch.plugins.diffusion.cache import LoadedModel, PipelineCache
from photobatch.plugins.diffusion.captions import caption, with_caption
from photobatch.plugins.diffusion.engine import RunOutput, generate
from photobatch.plugins.diffusion.memory import run_in_batches
from photobatch.plugins.diffusion.params import to_working_size, validate_params, working_size
from photobatch.plugins.diffusion.settings import settings_from_recipe
from photobatch.plugins.diffusion.sources import ModelError, adapters_hash
from photobatch.plugins.diffusion.tiles import merge_tiles, tile_boxes
from photobatch.recipes.runner_fields import DEFAULT_CAPTIONER, wants_caption


class DiffusersImg2ImgRunner:
    """Global img2img through diffusers (AutoPipelineForImage2Image and its from_pipe relatives).

    ``native_size`` overrides the family's working side (tests use small ones);
    ``batch_on_cpu`` lets ``run_batch`` batch on the CPU too (measured: it does not pay there).
    """

    name = "img2img"

    def __init__(self, device: str | None = None, cache: PipelineCache | None = None,
                 native_size: int | None = None, batch_on_cpu: bool = False,
                 compile_unet: bool | None = None, precision: str | None = None):
        self.cache = cache or PipelineCache(device, compile_unet=compile_unet, precision=precision)
        self.native_override = native_size
        self.batch_on_cpu = batch_on_cpu

    @property
    def device(self) -> str:
        """The device this runner's models run on ("cpu", "cuda", "mps")."""
        return self.cache.device

    def use_device(self, device: str | None) -> None:
        """Run on ``device`` (the config's ``[defaults] device``); None or "auto" picks the best."""
        self.cache.use_device(device)

    def runtime_problem(self) -> str | None:
        """Why models cannot run here on this runner's device, in its precision (None when
        they can)."""
        from photobatch.plugins.diffusion.device import device_problem

        problem = device_problem(self.device)
        if problem:
            return problem
        try:
            self.cache.dtype  # a precision name from PHOTOBATCH_PRECISION is checked here
        except ValueError as exc:
            return str(exc)
        return None

    @property
    def precision(self) -> str:
        """The precision models load in ("fp32", "bf16", "fp16") on this runner's device."""
        from photobatch.plugins.diffusion.device import precision_name

        return precision_name(self.cache.dtype)

    def use_precision(self, precision: str | None) -> None:
        """Compute in ``precision`` (the config's ``[defaults] precision``); None or "auto" picks."""
        self.cache.use_precision(precision)

    def use_readers(self, readers) -> None:
        """Read reference photos with the app's photo ``readers`` (RAW, HEIC... as photos are)."""
        self.cache.use_readers(readers)

    def pipeline(self, model: str, config: str | None = None):
        """Load (once) and return (pipeline, model ref, device, model hash) for ``model``."""
        loaded = self.cache.get(model, config)
        return loaded.pipe, loaded.ref, loaded.device, loaded.hash

    def native(self, loaded: LoadedModel) -> int:
        """The working side for ``loaded``: its family's native size unless overridden."""
        return self.native_override or loaded.info.native

    def captioned(self, settings, image: Image.Image, loaded: LoadedModel):
        """``settings`` with ``{caption}`` in its prompts filled in from ``image`` (the whole
        photo, or the region a mask's run works on); unchanged without the token."""
        if not wants_caption(settings):
            return settings
        source = settings.resolve_path(settings.captioner or DEFAULT_CAPTIONER)
        text = caption(self.cache.captioner(source, loaded.device), image)
        return replace(with_caption(settings, text), captioned=True)

    def loaded_for(self, model: str, settings) -> tuple[LoadedModel, object]:
        """The loaded ``model`` and ``settings`` as they run on it (its family's table applied)."""
        loaded = self.cache.get(model, settings.model_config)
        return loaded, settings.for_family(loaded.info.table)

    def size_for(self, image: Image.Image, loaded: LoadedModel, settings) -> tuple[int, int]:
        """The size ``image`` goes to the model at: the working side's pixel budget, aspect kept,
        sides the multiple the model's family needs."""
        family = loaded.info.family
        if loaded.info.edit:
            # Qwen-Image-Edit's pipeline works at its own size, whatever it is given.
            from photobatch.plugins.diffusion.qwen_edit import edit_size

            return edit_size(image.width, image.height)
        return working_size(image.width, image.height, self.working_side(loaded, settings),
                            family.multiple, family.max_pixels)

    def working_side(self, loaded: LoadedModel, settings) -> int:
        """The side of the pixel budget the model works at: the recipe's ``working_size``,
        else the model's native side."""
        return settings.working_size or self.native(loaded)

    def run(self, image: Image.Image, recipe, seed: int, model: str) -> RunOutput:
        """Run ``recipe`` on ``image`` (RGB, any size).

        The result is at working size (``restore_full_resolution`` brings it to full size),
        or already full size when the recipe's full_resolution is "tiled".
        """
        loaded, settings = self.loaded_for(model, settings_from_recipe(recipe))
        image = rgb(image)
        settings = self.captioned(settings, image, loaded)
        if settings.full_resolution == "tiled":
            return self._run_tiled(loaded, settings, image, seed)
        size = self.size_for(image, loaded, settings)
        model_input = to_working_size(image, size)
        reference_colors = getattr(recipe, "reference_colors", "none")
        source_input = model_input
        if reference_colors in ("before", "both"):
            # Style matching: the model starts from the photo already in the reference's colours.
            model_input = toward_reference(model_input, settings, self.cache.read_reference)
        out = generate(self.cache, loaded, settings, [model_input], [seed])[0]
        if reference_colors in ("after", "both"):
            out = toward_reference(out, settings, self.cache.read_reference)
        # Full resolution transfers the change from the *source* picture to the output.
        return RunOutput(out, loaded.ref.model_id, loaded.hash, loaded.device, size, source_input,
                         precision=loaded.precision,
                         adapters_hash=adapters_hash(settings), prompt=filled_prompt(settings),
                         family=loaded.info.table, model_config=loaded.base)

    def run_batch(self, images, recipe, seeds, model: str) -> list[RunOutput]:
        """Run ``recipe`` on several images; same-size ones share pipeline calls of up to ``batch``.

        Batches only on GPUs (or with ``batch_on_cpu``); outputs equal single calls with the
        same seeds within about one level per pixel.
        """
        settings = settings_from_recipe(recipe)
        if len(images) != len(seeds):
            raise ValueError(f"{len(images)} images need {len(images)} seeds, got {len(seeds)}")
        if wants_caption(settings):
            # Each photo its own caption, so its own prompt: one at a time.
            return [self.run(img, recipe, s, model) for img, s in zip(images, seeds)]
        loaded, settings = self.loaded_for(model, settings)
        if settings.full_resolution == "tiled":
            return [self._run_tiled(loaded, settings, rgb(img), s) for img, s in zip(images, seeds)]
        batch = settings.batch if (loaded.device != "cpu" or self.batch_on_cpu) else 1
        inputs = []
        for img in images:
            img = rgb(img)
            inputs.append(to_working_size(img, self.size_for(img, loaded, settings)))
        outputs: list[RunOutput | None] = [None] * len(images)
        adapters = adapters_hash(settings)
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, model_input in enumerate(inputs):
            by_size.setdefault(model_input.size, []).append(i)

        def run(chunk):
            return generate(self.cache, loaded, settings, [inputs[i] for i in chunk],
                            [seeds[i] for i in chunk])

        for size, indices in by_size.items():
            for i, out in zip(indices, run_in_batches(indices, batch, loaded, run)):
                outputs[i] = RunOutput(out, loaded.ref.model_id, loaded.hash, loaded.device,
                                       size, inputs[i], precision=loaded.precision,
                                       adapters_hash=adapters, family=loaded.info.table,
                                       model_config=loaded.base)
        return outputs

    def _run_tiled(self, loaded: LoadedModel, settings, image: Image.Image, seed: int) -> RunOutput:
        # Tiles of the working size over the full-size photo: the model sees real pixels 1:1.
        side = self.working_side(loaded, settings)
        width, height = image.size
        multiple = loaded.info.family.multiple
        side = side // multiple * multiple
        tile_w = min(side, _ceil_to(width, multiple))
        tile_h = min(side, _ceil_to(height, multiple))
        padded = _pad_to(image, max(width, tile_w), max(height, tile_h))
        overlap = min(settings.tile_overlap, tile_w // 2, tile_h // 2)
        boxes = tile_boxes(padded.width, padded.height, tile_w, tile_h, overlap)
        batch = settings.batch if (loaded.device != "cpu" or self.batch_on_cpu) else 1

        def run(chunk):
            # One seed per tile, derived from the file's: tiles do not repeat one noise pattern.
            return generate(self.cache, loaded, settings, [padded.crop(boxes[k]) for k in chunk],
                            [(seed + k) % 2**32 for k in chunk])

        outs = run_in_batches(list(range(len(boxes))), batch, loaded, run)
        tiles = [(box, _as_array(out)) for box, out in zip(boxes, outs)]
        merged = merge_tiles(padded.width, padded.height, tiles, overlap)[:height, :width]
        return RunOutput(Image.fromarray(merged), loaded.ref.model_id, loaded.hash, loaded.device,
                         (tile_w, tile_h), None, precision=loaded.precision,
                         adapters_hash=adapters_hash(settings), prompt=filled_prompt(settings),
                         family=loaded.info.table, model_config=loaded.base)


def toward_reference(image: Image.Image, settings, read=None) -> Image.Image:
    """``image`` with the IP-Adapter reference photo's colours (LAB match, lightness kept);
    references are read with ``read`` (a path -> an sRGB picture; None: the built-in readers)."""
    from photobatch.plugins.diffusion.adapters import load_reference
    from photobatch.plugins.diffusion.colormatch import match_colors

    read = read or load_reference

    ip = settings.ip_adapter
    if ip is None or not ip.references:
        raise ValueError("reference_colors needs ip_adapter.reference (the reference photo)")
    references = []
    for path in ip.references:
        reference = read(settings.resolve_path(path))
        reference.thumbnail((512, 512))
        references.append(reference)
    return match_colors(image, _side_by_side(references))


def _side_by_side(pictures: list[Image.Image]) -> Image.Image:
    """Several reference photos as one picture, so the colour match takes in all of them."""
    if len(pictures) == 1:
        return pictures[0]
    import numpy as np

    # Each photo's pixels, as one strip: a histogram match only counts pixels.
    return Image.fromarray(np.concatenate([np.asarray(p).reshape(-1, 3) for p in pictures])[None])


def filled_prompt(settings) -> str | None:
    """The prompt as it ran when a caption filled it in (what the catalog records), else None."""
    return settings.prompt if settings.captioned else None


def rgb(image: Image.Image) -> Image.Image:
    """``image`` in RGB, itself when it is (``convert`` copies even an RGB image)."""
    return image if image.mode == "RGB" else image.convert("RGB")


def _ceil_to(n: int, multiple: int) -> int:
    return max(64, -(-n // multiple) * multiple)


def _pad_to(image: Image.Image, width: int, height: int) -> Image.Image:
    if image.size == (width, height):
        return image
    import numpy as np

    arr = np.asarray(image)
    arr = np.pad(arr, ((0, height - image.height), (0, width - image.width), (0, 0)), mode="edge")
    return Image.fromarray(arr)


def _as_array(image: Image.Image):
    import numpy as np

    return np.asarray(image.convert("RGB"))


__all__ = ["DiffusersImg2ImgRunner", "ModelError", "RunOutput", "working_size", "validate_params"]
