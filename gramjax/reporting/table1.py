"""The paper's Table I for your own runs: bicubic plus trained models on
benchmark folders, as markdown with uncertainty-quality tables and links to
pictures (``gramjax.report`` is its command line)."""

from __future__ import annotations

import os
import pathlib

from gramjax.core.errors import UserError
from gramjax.evaluation import folders as folders_lib
from gramjax.evaluation import recalibrate as fitting
from gramjax.evaluation.protocol import Protocol
from gramjax.inference import predictor as inference
from gramjax.metrics import luma
from gramjax.metrics import recalibration
from gramjax.reporting import figures
from gramjax.reporting import tables


def check_scale(model_scale: int, scale: int | None, what: str,
                key: str = 'scale') -> int:
  """The scale to use: the model's, which ``scale`` (when given) must
  equal; the error names ``key`` (the commands give their flag)."""
  if scale is not None and scale != model_scale:
    raise UserError(f'{key}={scale} does not match the x{model_scale} '
                    f'model of {what}')
  return model_scale


def write_figures(predictors, results, folders, *, scale: int,
                  tile: int, directory: pathlib.Path, fig_images: int
                  ) -> tuple[list[tuple[str, pathlib.Path]], str]:
  """Per dataset: a reliability diagram and a sparsification plot with every
  model that predicts uncertainty (``results[model][folder]``: its
  ``FolderResults``), and a Fig. 3-style comparison of the first
  ``fig_images`` images. Returns ([(title, path)], note)."""
  written, note = [], ''
  for folder in folders:
    try:
      written += figures.folder_plots(
          {name: results[name][folder.name] for name in predictors},
          folder.name, directory)
    except UserError as e:
      note = f'Plots skipped: {e}.'
    views = figures.comparison_views(predictors, folder.images[:fig_images],
                                     scale=scale, tile=tile)
    if views:
      stem = folder.name.replace('/', '_')
      written.append((f'HR, bicubic, and each model\'s mean and sigma, '
                      f'{folder.name}', figures.comparison_figure(
                          views, directory / f'comparison_{stem}.png')))
  return written, note


def build_report(models: dict[str, str], folders, *, scale: int | None,
                 convention: str, baseline: str, tile: int = 128,
                 quiet: bool = False, figures_dir=None, fig_images: int = 2,
                 link_base=None,
                 y_correlation: float = luma.Y_CORRELATION,
                 aggregation: str = 'pooled', recalibrate: bool = True,
                 scale_key: str = 'scale'):
  """Evaluates bicubic and every model (``{name: workdir}``, latest
  checkpoints; Y's variance assumes channel errors of correlation
  ``y_correlation``; uncertainty figures by ``aggregation``; with
  ``recalibrate``, also after the workdir's stored recalibration of that
  checkpoint); returns (markdown, columns) where ``columns`` is
  ``{column: {folder: entry}}``. With ``figures_dir`` also draws the
  pictures there and links them (relative to ``link_base``, the markdown
  file's folder). A ``scale`` other than a model's is a ``UserError``
  naming ``scale_key``."""
  if baseline not in models:
    raise UserError(f'baseline={baseline!r}: not one of the models '
                    f'({", ".join(models)})')
  # Load every model first: a bad workdir fails before any evaluation.
  predictors = {}
  for name, workdir in models.items():
    predictors[name] = inference.load(workdir)
    scale = check_scale(predictors[name].scale, scale, f'{name}={workdir}',
                        scale_key)
  protocol = Protocol(scale, convention, tile, aggregation, y_correlation)
  columns = {tables.BICUBIC: folders_lib.entries(folders_lib.evaluate_folders(
      folders, protocol, label='Bicubic: ', quiet=quiet))}
  results = {}
  for name, predictor in predictors.items():
    recal = (recalibration.for_model(models[name], predictor.model_key(),
                                     recalibrate)
             if predictor.predicts_uncertainty else None)
    if recal is not None:
      fitting.check_disjoint(recal, folders)
    results[name] = folders_lib.evaluate_folders(
        folders, protocol.with_recalibration(recal), predictor,
        label=f'{name}: ', quiet=quiet)
    columns[name] = folders_lib.entries(results[name])
    for entry in columns[name].values():
      entry['workdir'] = str(models[name])
  caption = tables.make_caption(
      scale=scale, convention=convention, baseline=baseline, models=models,
      steps={n: p.step for n, p in predictors.items()})
  markdown = tables.markdown_table(columns, baseline=baseline,
                                   caption=caption)
  quality = tables.quality_tables(columns)
  if quality:
    markdown += '\n' + quality
  if figures_dir is not None:
    written, note = write_figures(predictors, results, folders,
                                  scale=scale, tile=tile,
                                  directory=pathlib.Path(figures_dir),
                                  fig_images=fig_images)
    links = []
    for title, path in written:
      rel = os.path.relpath(path, link_base) if link_base else str(path)
      links.append(f'![{title}]({pathlib.Path(rel).as_posix()})')
    markdown += '\n' + '\n\n'.join(links + ([note] if note else [])) + '\n'
  return markdown, columns
