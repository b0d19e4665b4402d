"""Layer 3, the SR literature's evaluation protocol: PSNR/SSIM and the
uncertainty figures of one image (``protocol``), of folders (``folders``),
and recalibration fitted on held-out images (``recalibrate``)."""
