"""Output folders and atomic writes (gramjax.core.files)."""

import pytest

from gramjax.core import files
from gramjax.core.errors import UserError


def test_output_dir_removes_what_it_created_when_nothing_was_written(
    tmp_path):
  new = tmp_path / 'a' / 'b'
  with pytest.raises(RuntimeError):
    with files.output_dir(new, '--output') as path:
      assert path.is_dir()
      (path / 'empty_sub').mkdir()
      raise RuntimeError('failed before writing')
  assert not (tmp_path / 'a').exists()  # The parent it made, too.


def test_output_dir_keeps_folders_with_files_or_that_existed(tmp_path):
  with pytest.raises(RuntimeError):
    with files.output_dir(tmp_path / 'w', '--workdir') as path:
      (path / 'metrics.jsonl').write_text('{}\n')
      raise RuntimeError
  assert (tmp_path / 'w' / 'metrics.jsonl').is_file()
  (tmp_path / 'old').mkdir()
  with pytest.raises(RuntimeError):
    with files.output_dir(tmp_path / 'old', '--workdir'):
      raise RuntimeError
  assert (tmp_path / 'old').is_dir()


def test_unusable_paths_name_the_flag(tmp_path):
  afile = tmp_path / 'f'
  afile.write_text('x')
  with pytest.raises(UserError, match=f'^--output={afile}: exists and is '
                     'not a folder$'):
    files.writable_dir(afile, '--output')
  with pytest.raises(UserError, match='^--json=.*cannot write it'):
    files.write_json(afile / 'sub' / 'x.json', {}, '--json')


def test_atomic_write_leaves_no_temporary_file(tmp_path):
  files.write_json(tmp_path / 'r.json', {'a': 1})
  assert (tmp_path / 'r.json').read_text() == '{\n  "a": 1\n}\n'
  assert [p.name for p in tmp_path.iterdir()] == ['r.json']
