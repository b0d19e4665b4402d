"""Layer 2, what a run holds and keeps: the train state and its recipe
(``train_state``), orbax checkpoints (``checkpoint``), the device mesh and
host-local values (``distributed``)."""
