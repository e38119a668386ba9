"""`facecast stylize`: repaint a portrait with the user's local Stable Diffusion weights (img2img),
keeping the face where it was so the result prepares and animates like the photo.

    from facecast.stylize.pipeline import StylizeSettings, stylize_file
    stylize_file("me.jpg", "me-styled.png", "sd15/", StylizeSettings(prompt="watercolour portrait"))

Importing this package needs no torch; the gpu extra loads with the model (pipeline.load_pipeline).
"""
