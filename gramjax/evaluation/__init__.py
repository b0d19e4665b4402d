"""Layer 3, the SR literature's evaluation protocol: PSNR/SSIM and the
uncertainty figures of one image, one folder, many folders
(``protocol``)."""
