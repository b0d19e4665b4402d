"""Layer 1, measuring: image quality (PSNR/SSIM conventions, ``quality``),
the predicted uncertainty's quality (``uncertainty``, ``calibration``) and
recalibration after training (``recalibration``). NumPy only, no JAX."""
