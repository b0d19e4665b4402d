"""Layer 4, training: the loop (``loop``), its metric writers, profiler and
finite-loss guard (``monitor``), validation and samples while training
(``validation``)."""
