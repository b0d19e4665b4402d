"""Layer 1, measuring: image quality (PSNR/SSIM conventions, ``quality``),
the predicted uncertainty's quality around one residuals type
(``residuals``; ``uncertainty``, ``calibration``, ``ranking``, ``luma``,
``summary``) and recalibration after training (``recalibration``). NumPy
only, no JAX."""
