"""Distillation of the musetalk backend's networks into smaller students (`facecast distill ...`).

Two tasks share one training loop:

    decoder_task.train_decoder(DecoderSettings(...), teacher=None) -> Result   # small VAE decoder
    unet_task.train_unet(UnetSettings(...), teacher=None) -> Result            # student UNet

The teacher is a musetalk model directory (loaded from local files only) or already-loaded
networks (loading.Models). Modules: settings (the options), teacher (loading, encoding crops),
augment and data (face crops and other images), speech (whisper windows of speech), metrics
(PSNR, mouth region, edge loss), checkpoint (atomic save / resume), trainer (the loop), cli.
Importing this package needs no torch.
"""
