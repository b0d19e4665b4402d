"""Layer 5, what a person reads: markdown tables (``tables``), pictures of
results (``figures``), the paper's Table I for your own runs
(``table1``)."""
