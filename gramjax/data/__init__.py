"""Data: image files (``images``), prepared memory-mapped folders
(``prepared``) and the training pipeline over either (``pipeline``).

The names most callers need are re-exported here.
"""

from gramjax.data.images import (IMAGE_SUFFIXES, ImageFile, content_digest,
                                 decode_image,
                                 load_image, load_images, resolve_images)
from gramjax.data.pipeline import (held_out_images, load_training_set,
                                   train_dataset)

__all__ = ['IMAGE_SUFFIXES', 'ImageFile', 'content_digest', 'decode_image',
           'load_image',
           'load_images', 'resolve_images',
           'held_out_images', 'load_training_set', 'train_dataset']
