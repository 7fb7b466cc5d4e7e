"""One line of help per recipe field, for ``recipes new``, ``recipes fields`` and docs/recipes.md."""

from photobatch.recipes.runner_fields import SCHEDULES
from photobatch.recipes.schema import SAMPLERS

FIELD_HELP = {
    "description": "what the recipe does, for `photobatch recipes list`",
    "runner": "what runs the model: img2img (global) or a plugin's runner",
    "model": "a diffusers folder, a .safetensors or .gguf file or a hub id (default: the configured model)",
    "prompt": "what the result should look like",
    "negative_prompt": "what it should not look like",
    "strength": "(0, 1]: how far from the photo the model may go; about int(steps * strength) steps run",
    "steps": "sampler steps at strength 1 (A1111's slider)",
    "cfg": ("classifier-free guidance: how strongly the prompt steers (5-8 for photos; FLUX.1: "
            "its distilled guidance, 2.5-4)"),
    "sampler": ", ".join(SAMPLERS) + " (SD 3.x and FLUX.1: Euler, Euler a or LCM)",
    "schedule": "A1111's Schedule type: " + ", ".join(SCHEDULES) + " (Automatic: the sampler's own)",
    "seed": "fix the seed for every photo (default: derived from the photo and the recipe)",
    "true_cfg": "FLUX.1 only: classifier-free guidance with the negative prompt at this scale (diffusers' true_cfg_scale; 1 = off, above it each step runs twice); put it under [family.flux]",
    "clip_skip": "A1111's Clip skip: 1 = the text encoder's last layer, 2 = the one before (for models trained that way)",
    "vae": "a VAE of the recipe's own (A1111's SD VAE): diffusers folder, .safetensors file or hub id",
    "embeddings": "textual-inversion embeddings: [{path = \"x.safetensors\", token = \"word\"}], called up by the word in a prompt",
    "captioner": "the captioning model whose words replace {caption} in the prompts: a transformers folder or hub id (default: Salesforce/blip-image-captioning-base)",
    "working_size": "the model's working size in pixels per side, as a pixel budget with the photo's aspect kept (A1111's width/height; default: the model's native, SD 1.x 512, SDXL 1024)",
    "exact_steps": "run exactly `steps` denoising steps whatever the strength (A1111's option)",
    "full_resolution": "how the edit reaches full size: detail-transfer, tiled or resize",
    "color_match": "match the result's colours back to the photo (A1111 colour correction)",
    "model_config": "a local config folder for a single-file checkpoint",
    "mask_blur": "pixels of feathering at mask edges (inpainting)",
    "mask_padding": "pixels of context around a masked area when only it is processed",
    "only_masked": "process only a padded crop around each mask at working size (A1111)",
    "tile_overlap": "pixels tiles overlap with full_resolution = tiled",
    "batch": "photos per model call on a GPU",
    "loras": "LoRA weights: [{ path = \"...\", weight = 0.8 }]",
    "ip_adapter": "reference-image conditioning: { model = \"...\", scale = 0.6, reference = \"photo.jpg\" or [\"a.jpg\", \"b.jpg\"] } (on FLUX.1, model may name FLUX.1 Redux; on FLUX.2 [klein] and [dev] and Qwen-Image-Edit 2509 and later, model = \"native\" hands the reference photos, up to 4, 10 and 2, to the model itself, scale 1.0)",
    "controlnet": "structure conditioning: { model = \"...\", preprocessor = \"canny\" (or \"depth\", \"none\"), scale = 0.8, preprocessor_model = \"...\" (depth: the estimator), guidance_start = 0.0, guidance_end = 1.0, mode = \"tile\" (Union ControlNets: the condition type; default from the preprocessor) }, or several as [[controlnet]] tables",
    "freeu": "FreeU: true (the model family's published factors) or { b1 = 1.3, b2 = 1.4, s1 = 0.9, s2 = 0.2 }",
    "pag": "perturbed-attention guidance: true (scale 3 on the mid block) or { scale = 3.0, adaptive_scale = 0.0, layers = [\"mid\"] }",
    "refiner": "an SDXL model for the last part of the denoising (A1111's Refiner): { model = \"...\", switch_at = 0.8 }",
    "mask": "none (the whole photo), faces (only the faces a detector finds) or sidecar (IMG_0001.mask.png beside the photo, white where it may change); the last two with runner inpaint",
    "face_detector": "which face detector finds the faces (photobatch plugins lists them)",
    "face_expand": "grow each face box by this fraction to cover forehead, chin and hairline",
    "reference_colors": "move colours toward the ip_adapter reference: none, before, after, both",
    "post": "classical steps after the model, in order: [{ step = \"name\", ...params }]",
    "family": ("how the recipe runs on one model family, as tables: [family.flux] sampler = "
               "\"Euler\", cfg = 3.5 (families sd1, sd2, sdxl, sd3, flux, kontext "
               "and fill, FLUX.1 Kontext and Fill, over flux's table, flux2, FLUX.2 [klein], flux2_dev, "
               "FLUX.2 [dev], over flux2's, qwenimage, "
               "Qwen-Image, qwenimage_edit, Qwen-Image-Edit, over qwenimage's, and zimage, Z-Image; "
               "edit words the recipe for the models that edit the photo they read, Kontext and "
               "Qwen-Image-Edit, whose tables apply over it; fields prompt, "
               "negative_prompt, true_cfg, sampler, schedule, cfg, steps, exact_steps, strength, and an "
               "ip_adapter table of model, subfolder, weight_name, scale; `photobatch recipes show NAME "
               "--family flux` shows the result)"),
    "output.subfolder": "a subfolder of the output folder, same tokens as the name (\"{date}\")",
    "output.collision": "a name taken by another file: suffix (-1, -2), overwrite or skip",
    "output.max_side": "fit the output within this many pixels on its longest side (0: full size)",
    "output.sharpen": "output sharpening after max_side, as Lightroom's export: none, screen, "
                      "matte or glossy (paper, its radius following ppi)",
    "output.sharpen_amount": "low, standard or high",
    "output.ppi": "pixels per inch written into the file for printing, as Lightroom's export "
                  "Resolution (300 for a print lab; 0: keep the source's)",
    "output.watermark": "text drawn on the output (lower right unless watermark_position says "
                        "otherwise), after sharpening, as Lightroom's copyright watermark (\"© 2026 Jane Doe\", or from "
                        "the photo's EXIF or the config's [copyright]: \"© {year} {artist}\", \"{copyright}\"; "
                        "\"\": none)",
    "output.watermark_image": "or a graphic: the photographer's logo (a PNG with transparency; a "
                              "path relative to the recipe file), as Lightroom's graphic watermark",
    "output.watermark_position": "where the watermark sits: top-left, top, top-right, left, center, "
                                 "right, bottom-left, bottom or bottom-right",
    "output.watermark_size": "the watermark's width in percent of the picture's shorter side, the "
                             "same on portrait and landscape frames (0: automatic: text 4.5 % of "
                             "it high, a graphic 22 % of it wide)",
    "output.watermark_opacity": "how opaque the watermark is, in percent (1-100)",
    "output.watermark_inset": "how far the watermark sits from the edges, in percent of the "
                              "picture's shorter side",
    "output.format": "jpeg, tiff, png, lossless (TIFF at the source's bit depth), or the name "
                     "of a writer a plugin adds; PNG and TIFF keep a source's transparency",
    "output.quality": "JPEG quality 1-100 (4:4:4 chroma from 90)",
    "output.name": "file name template: {stem} {recipe} {ext} {date} {camera} {seq} {seed}",
    "output.metadata": "all, no-location, copyright-only or none",
    "output.bit_depth": "8 or 16 (default: the source's, as far as the format holds it)",
    "output.color_space": "source (keep its ICC profile), srgb or adobe-rgb",
    "output.sidecar": "none, lightroom (IMG_1.xmp) or darktable (IMG_1.jpg.xmp)",
    "output.progressive": "progressive JPEG",
}
