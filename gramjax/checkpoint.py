"""Orbax checkpoints of the train state, the data iterator and the config.

Layout: ``WORKDIR/checkpoints/<step>/{state,data,config}``. ``state`` is the
TrainState pytree, ``data`` this process's grain iterator state (so a resumed
run sees exactly the batches it would have seen), ``config`` the config the
run was started with (JSON). Saves are atomic: a run killed mid-save leaves
the previous step intact.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp


class Checkpoints:
  """Thin wrapper over ``ocp.CheckpointManager`` for one workdir."""

  def __init__(self, workdir: str | pathlib.Path, *, every: int, keep: int,
               async_save: bool = True):
    self.directory = pathlib.Path(workdir).absolute() / 'checkpoints'
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            save_interval_steps=every, max_to_keep=keep, create=True,
            enable_async_checkpointing=async_save))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self.manager.all_steps())

  def save(self, step: int, state: Any, data_iterator, config_dict: dict,
           *, force: bool = False) -> bool:
    """Saves if ``step`` is due (or ``force``); returns whether it saved."""
    if step in self.manager.all_steps():
      return False
    args = {'state': ocp.args.StandardSave(state),
            'config': ocp.args.JsonSave(config_dict)}
    if data_iterator is not None:
      args['data'] = grain.checkpoint.CheckpointSave(data_iterator)
    return self.manager.save(step, args=ocp.args.Composite(**args),
                             force=force)

  def restore(self, step: int, abstract_state: Any, data_iterator=None):
    """Restores the state (onto the shardings of ``abstract_state``) and, in
    place, the data iterator."""
    args = {'state': ocp.args.StandardRestore(abstract_state)}
    if data_iterator is not None:
      args['data'] = grain.checkpoint.CheckpointRestore(data_iterator)
    out = self.manager.restore(step, args=ocp.args.Composite(**args))
    return out['state']

  def restore_config(self, step: int) -> dict:
    out = self.manager.restore(
        step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
    return dict(out['config'])

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.close()


def abstract_like(tree: Any) -> Any:
  """ShapeDtypeStructs (with shardings) for restoring onto ``tree``'s layout."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def config_to_dict(config) -> dict:
  return json.loads(config.to_json_best_effort())
