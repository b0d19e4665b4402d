"""Decode an image folder once into memory-mappable arrays for training.

  python -m gramjax.prepare --input=DIR --output=OUT [--lr_dir=LR --scale=4]

Then train with ``--config.data.train_dir=OUT``. Re-running resumes and skips
unchanged images (see ``gramjax.data.prepared``).
"""

from absl import flags

from gramjax import cli
from gramjax.core.errors import UserError

flags.adopt_module_key_flags(cli)
_INPUT = flags.DEFINE_string('input', None, 'Folder of HR images.')
_OUTPUT = flags.DEFINE_string('output', None, 'The prepared folder to write '
                              '(created if needed).')
_LR_DIR = flags.DEFINE_string('lr_dir', None, 'Optional folder of matching '
                              'LR images (e.g. DIV2K_train_LR_bicubic/X4).')
_SCALE = flags.DEFINE_integer('scale', 4, 'Scale of the LR images.')


def _main() -> None:
  if not _INPUT.value or not _OUTPUT.value:
    raise UserError('give --input=DIR (a folder of images) and --output=OUT '
                    '(the prepared folder)')
  # pylint: disable=g-import-not-at-top
  from gramjax.core import files
  from gramjax.data import prepared
  # pylint: enable=g-import-not-at-top
  with files.output_dir(_OUTPUT.value, '--output') as out:
    manifest = prepared.prepare(_INPUT.value, out, lr_dir=_LR_DIR.value,
                                scale=_SCALE.value)
  print(f'{out}: {len(manifest["images"])} images prepared; train with '
        f'--config.data.train_dir={out}')


if __name__ == '__main__':
  cli.start(_main)
