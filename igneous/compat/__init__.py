"""Drop-in compatibility with the original Igneous and python-task-queue.

- ``bridge``: registers our tasks (and the original's task names) in
  python-task-queue's registries, so ``TaskQueue(...).poll()`` and
  ``LocalTaskQueue`` run them; resolves the original's class names lazily.
- ``payloads``: turns a python-task-queue message (our tasks queued through
  python-task-queue, or the original Igneous's payloads) into a Task.
- ``original`` (+ ``original_labels``, ``skeletons``): the original's task
  classes (``DownsampleTask(layer_path=..., ...)``) translated onto our task
  functions; ``skeletons`` also holds the two merge task functions that fuse
  the fragments SkeletonTask forged, by the original's prefixes and shards.

Nothing here imports python-task-queue itself: it is only touched when the
user (or a ptq queue) brings it in.
"""
